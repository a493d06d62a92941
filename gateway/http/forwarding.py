"""Which headers cross the proxy, and who the client is.

Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and are dropped in both
directions, together with any header the ``Connection`` header names.  Forwarding headers
(``X-Forwarded-*``, ``Forwarded`` of RFC 7239) are believed only from peers listed in
``trusted_proxies``; from anyone else they are removed, because otherwise a client could
choose its own rate-limit key or make the upstream build URLs for a host of its choosing.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.config.settings import IPNetwork
from gateway.http.responses import SERVER

HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
#: Request headers removed whoever sent them: they could change the method the upstream
#: runs (``X-HTTP-Method-Override`` turns a POST into anything) or are replaced by ours.
_STRIPPED_REQUEST = HOP_BY_HOP | {
    "host",
    "content-length",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-request-id",
}
_FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)
_STRIPPED_UNTRUSTED = _STRIPPED_REQUEST | _FORWARDING
#: ``Server`` too: the gateway names itself (see :data:`gateway.http.responses.SERVER`).
_STRIPPED_RESPONSE = HOP_BY_HOP | {"content-length", "server"}
_STRIPPED_RESPONSE_WITH_ID = _STRIPPED_RESPONSE | {"x-request-id"}
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_REQUEST_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+=@-]")
MAX_REQUEST_ID = 128


def _connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _dropped(drop: frozenset[str], headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """``drop`` and whatever the ``Connection`` header names (RFC 9110 §7.6.1)."""
    values = tuple(headers.getall("Connection", ()))
    if len(values) == 1 and len(values[0]) <= 64:
        return _dropped_by(drop, values[0])  # "keep-alive", "close": every answer has one
    return drop | _connection_tokens(headers)


@functools.lru_cache(maxsize=64)
def _dropped_by(drop: frozenset[str], value: str) -> frozenset[str]:
    tokens = {t.strip().lower() for t in value.split(",") if t.strip()}
    return drop if tokens <= drop else drop | tokens


def new_request_id() -> str:
    """128 random bits from the OS (what ``secrets.token_hex(16)`` returns, in one call)."""
    return os.urandom(16).hex()


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which costs
# more than everything else about identifying a pass-through request.  Nothing changes it.
@dataclass(slots=True)
class Caller:
    """Who sent a request, as far as the gateway can vouch for it.

    ``request_id`` is the gateway's own, unless a trusted proxy sent a sane
    ``X-Request-ID`` (then it is adopted, so one id follows the request through the whole
    chain).  From anyone else that header is only recorded, sanitized and bounded, as
    ``client_request_id``: a caller must not be able to make unrelated audit events share
    one id.  ``upstream_request_id`` is what the upstream is sent: the client's own header
    as it came, when an untrusted client sent one, otherwise ``request_id``.
    """

    request_id: str
    client_request_id: str | None
    upstream_request_id: str
    client_ip: str | None
    peer: str | None
    trusted: bool


def _sanitize_request_id(value: str) -> str:
    return _REQUEST_ID_UNSAFE.sub("_", value[:MAX_REQUEST_ID])


class TrustedProxies:
    """Decides which peers' forwarding headers are believed."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in net for net in self.networks)

    def identify(self, peer: str | None, headers: CIMultiDictProxy[str]) -> Caller:
        """The :class:`Caller` of a request from ``peer`` with ``headers``."""
        if not self.networks:  # nobody is trusted: the common case, and the fast one
            given = headers.get("X-Request-ID")
            own = new_request_id()
            if given is None:
                return Caller(own, None, own, peer, peer, False)
            return Caller(own, _sanitize_request_id(given), given, peer, peer, False)
        trusted = self.trusts(peer)
        given = headers.get("X-Request-ID")
        if trusted and given is not None and _REQUEST_ID_RE.fullmatch(given):
            return Caller(given, None, given, self._client_ip(peer, headers, True), peer, True)
        own = new_request_id()
        if trusted or given is None:
            return Caller(own, None, own, self._client_ip(peer, headers, trusted), peer, trusted)
        client_ip = self._client_ip(peer, headers, False)
        return Caller(own, _sanitize_request_id(given), given, client_ip, peer, False)

    def client_ip(self, peer: str | None, headers: CIMultiDictProxy[str]) -> str | None:
        """The socket peer, or, behind trusted proxies, the rightmost untrusted
        ``X-Forwarded-For`` address (everything left of it could be forged)."""
        return self._client_ip(peer, headers, self.trusts(peer))

    def _client_ip(
        self, peer: str | None, headers: CIMultiDictProxy[str], trusted: bool
    ) -> str | None:
        if not trusted:
            return peer
        chain = _forwarded_for_chain(headers)
        for address in reversed(chain):
            if address is None:
                # A trusted proxy wrote something unreadable ("unix:", "unknown"): what
                # stands left of it cannot be vouched for, so the proxy itself is the client.
                return peer
            if not self.trusts(address):
                return address
        return next((a for a in chain if a is not None), peer)


def _forwarded_for_chain(headers: CIMultiDictProxy[str]) -> list[str | None]:
    """The addresses a trusted proxy forwarded, oldest first: ``X-Forwarded-For``, or when
    there is none, the ``for=`` parameters of ``Forwarded`` (RFC 7239 §5.2).  An address
    that cannot be read (``unknown``, an obfuscated ``_node``) is ``None``."""
    chain: list[str | None] = []
    for value in headers.getall("X-Forwarded-For", ()):
        for part in value.split(","):
            if part.strip():
                chain.append(_clean_address(part))
    if chain or "Forwarded" not in headers:
        return chain
    for value in headers.getall("Forwarded", ()):
        for element in _split_unquoted(value, ","):
            found = None
            for pair in _split_unquoted(element, ";"):
                name, _, text = pair.partition("=")
                if name.strip().lower() == "for":
                    found = _clean_address(text)
            chain.append(found)
    return chain


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted-strings (RFC 9110 §5.6.4)."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _clean_address(text: str) -> str | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711"
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _forwarded_value(value: str) -> str:
    """A token as is, anything else (``host:port``) as a quoted-string (RFC 7239 §4)."""
    return value if _TOKEN_RE.match(value) else '"' + value.replace('"', "") + '"'


def _forwarded_node(address: str | None) -> str:
    if address is None:
        return "unknown"
    return f'"[{address}]"' if ":" in address else address


@functools.lru_cache(maxsize=8)
def _public_parts(public_url: URL) -> tuple[str, str, str, str]:
    """What every request repeats about the deployment, computed once per public URL:
    scheme, authority, port, and the ``host=...;proto=...`` part of ``Forwarded``."""
    authority = public_url.raw_authority
    suffix = f"host={_forwarded_value(authority)};proto={public_url.scheme}"
    return public_url.scheme, authority, str(public_url.port), suffix


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    caller: Caller,
    *,
    public_url: URL,
    preserve_host: bool,
) -> CIMultiDict[str]:
    """The headers sent upstream for one request.

    ``X-Forwarded-For`` is appended to only when the peer is trusted; ``X-Forwarded-Host``
    and ``-Proto`` come from a trusted peer or else from ``public_url``, never from the
    client's ``Host``, so the upstream builds every URL it publishes for the gateway.
    """
    trusted, peer = caller.trusted, caller.peer
    drop = _STRIPPED_REQUEST if trusted else _STRIPPED_UNTRUSTED
    if "Connection" in incoming:
        drop = _dropped(drop, incoming)
    scheme, authority, port, forwarded_suffix = _public_parts(public_url)
    # Built as one list and turned into a CIMultiDict once: header by header costs more
    # than the rest of a pass-through request's own work.
    items = [(name, value) for name, value in incoming.items() if name.lower() not in drop]
    if preserve_host and "Host" in incoming:
        items.append(("Host", incoming["Host"]))
    peer_text = peer or "unknown"
    element = f"for={_forwarded_node(peer)};{forwarded_suffix}"
    if not trusted:  # every X-Forwarded-* and Forwarded header was dropped: all ours
        items += (
            ("X-Forwarded-For", peer_text),
            ("X-Forwarded-Proto", scheme),
            ("X-Forwarded-Host", authority),
            ("X-Forwarded-Port", port),
            ("Forwarded", element),
            ("X-Request-ID", caller.upstream_request_id),
        )
        return CIMultiDict(items)
    out = CIMultiDict(items)
    prior_xff = ", ".join(incoming.getall("X-Forwarded-For", ()))
    out["X-Forwarded-For"] = f"{prior_xff}, {peer_text}" if prior_xff else peer_text
    if "X-Forwarded-Proto" not in incoming:
        out["X-Forwarded-Proto"] = scheme
    if "X-Forwarded-Host" not in incoming:
        out["X-Forwarded-Host"] = authority
    if "X-Forwarded-Port" not in incoming:
        out["X-Forwarded-Port"] = port
    prior_fwd = ", ".join(incoming.getall("Forwarded", ()))
    out["Forwarded"] = f"{prior_fwd}, {element}" if prior_fwd else element
    out["X-Request-ID"] = caller.upstream_request_id
    return out


def downstream_header_items(
    incoming: CIMultiDictProxy[str], request_id: str | None = None
) -> list[tuple[str, str]]:
    """The upstream's response headers minus hop-by-hop ones, as a list; repeated headers
    such as ``Set-Cookie`` are kept one by one, in order; then ``Server`` and, given,
    ``X-Request-ID`` (whatever the upstream said for either is dropped)."""
    drop = _STRIPPED_RESPONSE if request_id is None else _STRIPPED_RESPONSE_WITH_ID
    if "Connection" in incoming:
        drop = _dropped(drop, incoming)
    items = [(name, value) for name, value in incoming.items() if name.lower() not in drop]
    items.append(("Server", SERVER))
    if request_id is not None:
        items.append(("X-Request-ID", request_id))
    return items


def downstream_response_headers(incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """:func:`downstream_header_items` as a CIMultiDict, to be changed further."""
    return CIMultiDict(downstream_header_items(incoming))
