"""Fetching Client ID Metadata Documents without becoming anyone's SSRF proxy.

With draft-ietf-oauth-client-id-metadata-document a ``client_id`` is an https URL and the
authorization server (here, the gateway in front of it) fetches the client's metadata from
it.  Whoever starts an authorization request chooses that URL, so the fetch is made on a
stranger's behalf and every step of it is bounded:

* the URL (draft, "Client Identifier"): https, a path other than ``/``, no dot segments
  (raw or percent-encoded), fragment or userinfo; a port is allowed, a query noted
  (``Fetched.has_query``: the draft says SHOULD NOT).  It is read by the gateway's one
  strict parser, :func:`gateway.uri.parse.parse_metadata_url`, so the host is normalized
  (:func:`gateway.uri.hosts.normalize_host`) and IP literals in every notation and
  special-use or private names (:func:`gateway.uri.hosts.internal_host_problem`) are refused;
* the address (draft, "Server Side Request Forgery (SSRF) Attacks"; RFC 6890): the host is
  resolved once, every address it resolves to must pass
  :func:`gateway.cimd.addresses.address_problem`, and the connection goes to those vetted
  addresses only: the HTTP client's resolver (:class:`PinnedResolver`) answers from what
  this task vetted (a context variable, so concurrent fetches of one host stay apart) and
  never asks DNS, so an answer that changes between the check and the connection (DNS
  rebinding) cannot be used; :class:`VettedConnector` checks the peer of every connection
  against them once more.  TLS still verifies the certificate against the host name (SNI
  and RFC 6125), with the system trust store plus ``ca_file``; no proxy from the
  environment, no cookies, a new connection per fetch;
* the response (draft, "Client Metadata"): 200 only, no redirects followed (3xx is
  ``cimd.fetch.redirect``, sprawz/gtm-mcp-server#70), ``application/json`` only, UTF-8
  if a charset is named (the draft lets an AS accept ``application/<AS-defined>+json``;
  this one defines none; an HTML challenge page answered with 200 is an error), no
  ``Content-Encoding`` (``identity`` is asked for; a compressed body would make the size
  cap meaningless), at most ``max_bytes`` (5 KiB, the draft's recommendation) counted on
  the bytes actually read, whatever ``Content-Length`` says, all within one ``timeout``
  over resolution, connection, headers and body;
* the document: strict JSON (RFC 8259, UTF-8, no duplicate names at any depth, with the
  hooks :mod:`gateway.oauth.body` reads a registration body with) that is an object.
  What it says (``client_id`` equal to the URL, no shared secrets) is
  :mod:`gateway.cimd.judge`'s job;
* the cost: documents are cached in-process for what the response's caching headers say
  (RFC 9111 §4.2: ``s-maxage``, ``max-age``, ``Expires``, less ``Age``), clamped to
  ``[min_cache_age, max_cache_age]`` (at most a day, as MCP's SEP-991 suggests); errors and
  invalid documents are never cached (the draft: MUST NOT).  Concurrent fetches of one URL
  share one request, and network fetches are limited per host, so a flood of distinct
  URLs on one host cannot make the gateway an amplifier against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from gateway.cimd.addresses import IPAddress, IPNetwork, address_problem
from gateway.errors import wire_description
from gateway.oauth.body import DuplicateKey, strict_loads
from gateway.uri.parse import RedirectURI, parse_metadata_url

# --------------------------------------------------------------------------- rule ids

INVALID_URL = "cimd.invalid_url"
FAILED = "cimd.fetch.failed"
TLS = "cimd.fetch.tls"
PRIVATE_ADDRESS = "cimd.fetch.private_address"
RATE_LIMITED = "cimd.fetch.rate_limited"
TIMEOUT = "cimd.fetch.timeout"
REDIRECT = "cimd.fetch.redirect"
STATUS = "cimd.fetch.status"
CONTENT_ENCODING = "cimd.fetch.content_encoding"
CONTENT_TYPE = "cimd.fetch.content_type"
TOO_LARGE = "cimd.fetch.too_large"
NOT_JSON = "cimd.fetch.not_json"

#: Every rule id a :class:`FetchError` can carry, with its meaning.
RULES: dict[str, str] = {
    INVALID_URL: "the client_id URL is not one a metadata document may have (https, a path, "
    "no dot segments, fragment or userinfo, a public DNS name)",
    FAILED: "the document server could not be reached (DNS failure, connection refused or "
    "reset, malformed HTTP)",
    TLS: "the document server's TLS certificate did not verify for its host name",
    PRIVATE_ADDRESS: "the host resolves to a special-use address (RFC 6890), directly or "
    "inside an IPv6 transition form",
    RATE_LIMITED: "too many documents were fetched from this host within the window",
    TIMEOUT: "resolution, connection, headers and body took longer than the deadline",
    REDIRECT: "the server answered with a redirect, which is never followed",
    STATUS: "the server answered with a status other than 200",
    CONTENT_ENCODING: "the response has a Content-Encoding (only identity is accepted)",
    CONTENT_TYPE: "the response is not application/json (an HTML challenge page, say)",
    TOO_LARGE: "the body is larger than the size cap (counted on bytes read)",
    NOT_JSON: "the body is not strict JSON (UTF-8, no duplicate keys) or not a JSON object",
}

_JSON_TYPE = "application/json"
_UTF8 = frozenset({"utf-8", "utf8"})
_CHUNK = 1024
#: Hosts tracked by the rate limiter before stale ones are swept.
_SWEEP_AT = 1024


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FetchSettings:
    """How documents are fetched; ``cimd.fetch`` in the configuration.

    ``resolve`` maps a host to the address (or addresses) to use instead of DNS, like
    curl's ``--resolve``; those addresses are vetted like DNS answers unless
    ``allow_private_addresses`` exempts them.
    """

    timeout: float = 5.0
    max_bytes: int = 5120
    max_cache_age: float = 86400.0
    ca_file: Path | None = None
    allow_private_addresses: tuple[IPNetwork, ...] = ()
    resolve: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    min_cache_age: float = 60.0
    per_host_rate: int = 10
    per_host_window: float = 60.0
    user_agent: str = "dcr-gateway"
    cache_size: int = 10000

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_bytes <= 0 or self.cache_size <= 0:
            raise ValueError("timeout, max_bytes and cache_size must be positive")
        if not 0 <= self.min_cache_age <= self.max_cache_age:
            raise ValueError("min_cache_age must be between 0 and max_cache_age")
        if self.per_host_rate <= 0 or self.per_host_window <= 0:
            raise ValueError("per_host_rate and per_host_window must be positive")


# --------------------------------------------------------------------------- results


class FetchError(Exception):
    """Why a document could not be used: ``rule`` (one of :data:`RULES`), ``description``
    (safe for an RFC 6749 §5.2 ``error_description``: printable ASCII, no internal
    addresses), ``detail`` (the whole story, for the audit event), the HTTP ``status`` if
    the server answered, and how long the attempt took."""

    def __init__(
        self,
        rule: str,
        description: str,
        *,
        detail: str | None = None,
        status: int | None = None,
        elapsed_ms: float = 0.0,
        address: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.rule = rule
        self.description = wire_description(description)
        self.detail = detail if detail is not None else description
        self.status = status
        self.elapsed_ms = elapsed_ms
        self.address = address
        self.retry_after = retry_after

    def clone(self) -> FetchError:
        """A fresh copy, so waiters sharing one failed fetch each raise their own."""
        return FetchError(
            self.rule,
            self.description,
            detail=self.detail,
            status=self.status,
            elapsed_ms=self.elapsed_ms,
            address=self.address,
            retry_after=self.retry_after,
        )

    def __repr__(self) -> str:
        return f"FetchError({self.rule!r}, {self.description!r})"


@dataclass(frozen=True)
class Fetched:
    """A document that was fetched and parsed: ``url`` is the ``client_id`` exactly as
    asked for, ``address`` the vetted IP address the connection went to."""

    url: str
    document: dict[str, Any]
    fetched_at: float
    expires_at: float
    cache_hit: bool
    status: int
    elapsed_ms: float
    address: str
    has_query: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """A vetted client_id URL: what to connect to and what to ask for."""

    url: str
    host: str
    port: int
    request_url: str
    has_query: bool


# --------------------------------------------------------------------------- the URL


def validate_url(url: str) -> Target:
    """Check a ``client_id`` URL (draft, "Client Identifier") or raise ``cimd.invalid_url``."""
    parsed = parse_metadata_url(url)
    if not isinstance(parsed, RedirectURI):
        raise FetchError(INVALID_URL, parsed.description, detail=f"{parsed.rule}: {parsed}")
    if parsed.path == "/":
        raise FetchError(
            INVALID_URL,
            f"the client_id URL {url[:200]} has no path; a metadata document URL must have one",
        )
    assert parsed.host is not None  # parse_metadata_url accepts https on a DNS name only
    port = 443 if parsed.port is None else parsed.port
    return Target(url, parsed.host, port, parsed.normalized(), parsed.query is not None)


# --------------------------------------------------------------------------- caching


def freshness_lifetime(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the response stays fresh by its own headers (RFC 9111 §4.2.1, as a shared
    cache: ``s-maxage``, then ``max-age``, then ``Expires`` - ``Date``), less its ``Age``
    (§4.2.3); ``0`` for ``no-store``, ``no-cache``, ``private`` or an invalid value (§4.2.1:
    treat as stale); ``None`` when the headers say nothing."""
    directives = _cache_directives(headers)
    if directives.keys() & {"no-store", "no-cache", "private"}:
        return 0.0
    lifetime: float | None = None
    for name in ("s-maxage", "max-age"):
        if name in directives:
            lifetime = _delta_seconds(directives[name] or "")  # a bare name is invalid
            break
    if lifetime is None and "Expires" in headers:
        lifetime = _expires_lifetime(headers, now)
    if lifetime is None:
        return None
    age = _delta_seconds(headers.get("Age"))
    return max(0.0, lifetime - (age or 0.0))


def cache_lifetime(
    headers: Mapping[str, str], now: float, *, min_age: float, max_age: float
) -> float:
    """How long the gateway keeps a document: its freshness lifetime (``min_age`` when the
    headers say nothing), never less than ``min_age`` nor more than ``max_age``."""
    lifetime = freshness_lifetime(headers, now)
    return min(max(min_age if lifetime is None else lifetime, min_age), max_age)


def _cache_directives(headers: Mapping[str, str]) -> dict[str, str | None]:
    """Cache-Control directives (RFC 9111 §5.2), lower-cased; a directive given twice with
    different values is recorded as invalid (``""``)."""
    getall = getattr(headers, "getall", None)  # a multidict keeps repeated headers apart
    values = getall("Cache-Control", []) if getall is not None else []
    if not values and "Cache-Control" in headers:
        values = [headers["Cache-Control"]]
    out: dict[str, str | None] = {}
    for value in values:
        for item in value.split(","):
            name, eq, arg = item.strip().partition("=")
            name = name.strip().lower()
            if not name:
                continue
            parsed = arg.strip().strip('"') if eq else None
            out[name] = parsed if out.get(name, parsed) == parsed else ""
    return out


def _delta_seconds(text: str | None) -> float | None:
    """RFC 9111 §1.2.2 delta-seconds; ``0`` (stale) for anything else but ``None``."""
    if text is None:
        return None
    return float(int(text)) if text.isascii() and text.isdigit() else 0.0


def _expires_lifetime(headers: Mapping[str, str], now: float) -> float:
    try:
        expires = parsedate_to_datetime(headers["Expires"]).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0  # RFC 9111 §5.3: an invalid date means "already expired"
    try:
        date = parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        date = now
    return max(0.0, expires - date)


class DocumentCache:
    """Fetched documents by URL, least recently used evicted beyond ``size`` entries."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, Fetched] = OrderedDict()

    def get(self, url: str, now: float) -> Fetched | None:
        entry = self._entries.get(url)
        if entry is None:
            return None
        if now >= entry.expires_at:
            del self._entries[url]
            return None
        self._entries.move_to_end(url)
        return entry

    def put(self, fetched: Fetched) -> None:
        self._entries[fetched.url] = fetched
        self._entries.move_to_end(fetched.url)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def pop(self, url: str) -> None:
        self._entries.pop(url, None)

    def __len__(self) -> int:
        return len(self._entries)


# --------------------------------------------------------------------------- rate


class HostRateLimiter:
    """At most ``rate`` network fetches per host in any ``window`` seconds (a sliding
    log: exact, and at most ``rate`` timestamps per host)."""

    def __init__(self, rate: int, window: float) -> None:
        self.rate = rate
        self.window = window
        self._log: dict[str, deque[float]] = {}
        self._sweep_at = _SWEEP_AT

    def acquire(self, host: str, now: float) -> float | None:
        """Count one fetch from ``host`` and return ``None``, or return the seconds until
        one more would fit (nothing is counted then)."""
        log = self._log.get(host)
        if log is None:
            if len(self._log) >= self._sweep_at:
                self._sweep(now)
            log = self._log[host] = deque()
        while log and log[0] <= now - self.window:
            log.popleft()
        if len(log) >= self.rate:
            return max(0.0, log[0] + self.window - now)
        log.append(now)
        return None

    def _sweep(self, now: float) -> None:
        """Forget hosts with nothing in the window; amortized (the next sweep waits until
        the table has doubled), so a steady stream of new hosts costs O(1) each."""
        stale = [h for h, log in self._log.items() if not log or log[-1] <= now - self.window]
        for host in stale:
            del self._log[host]
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._log))

    def __len__(self) -> int:
        return len(self._log)


# --------------------------------------------------------------------------- the document


def parse_document(body: bytes) -> dict[str, Any]:
    """Strict JSON (RFC 8259 §8.1 UTF-8, no duplicate member names at any depth, no NaN or
    infinities, no unpaired surrogates) that is an object, or ``cimd.fetch.not_json``."""
    try:
        text = body.decode("utf-8")
        value = strict_loads(text)
    except UnicodeDecodeError:
        raise FetchError(NOT_JSON, "the metadata document is not valid UTF-8") from None
    except DuplicateKey as dup:
        raise FetchError(
            NOT_JSON, f"the metadata document has the key {json.dumps(dup.key[:100])} twice"
        ) from None
    except RecursionError:
        raise FetchError(NOT_JSON, "the metadata document is nested too deeply") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise FetchError(NOT_JSON, f"the metadata document is not valid JSON: {reason}") from None
    if not isinstance(value, dict):
        raise FetchError(NOT_JSON, "the metadata document is JSON but not a JSON object")
    if "\\u" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise FetchError(
                NOT_JSON, "the metadata document has an unpaired UTF-16 surrogate"
            ) from None
    return value


# --------------------------------------------------------------------------- resolution

Lookup = Callable[[str, int], Awaitable[tuple[IPAddress, ...]]]


@dataclass(slots=True)
class Attempt:
    """The fetch under way in this task: the host, the addresses vetted for it, and the
    peer the connection reached (set by :class:`VettedConnector`)."""

    host: str
    addresses: tuple[IPAddress, ...]
    peer: str | None = None


#: Per task, so concurrent fetches of one host never see each other's addresses.
_ATTEMPT: ContextVar[Attempt | None] = ContextVar("cimd_fetch_attempt", default=None)


@contextlib.contextmanager
def pinned(host: str, addresses: tuple[IPAddress, ...]) -> Iterator[Attempt]:
    """Connections made by this task while the block runs go to ``host`` at
    ``addresses`` only."""
    attempt = Attempt(host, addresses)
    token = _ATTEMPT.set(attempt)
    try:
        yield attempt
    finally:
        _ATTEMPT.reset(token)


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver, answering only with the addresses vetted for the fetch under
    way in the calling task (:func:`pinned`): any other host cannot be connected to at
    all, and DNS is never asked a second time."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        attempt = _ATTEMPT.get()
        if attempt is None or attempt.host != host:
            raise OSError(f"{host} was not vetted for this fetch")
        return [_result(host, address, port) for address in attempt.addresses]

    async def close(self) -> None:
        return None


class VettedConnector(aiohttp.TCPConnector):
    """Records the peer of each new connection in the task's :class:`Attempt` and drops
    the connection if the peer is not one of the vetted addresses (it cannot be, with
    :class:`PinnedResolver`; this is the last line, not the first)."""

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        attempt = _ATTEMPT.get()
        transport = connection.transport
        peer = None if transport is None else transport.get_extra_info("peername")
        address = _address(peer)
        if attempt is None or address is None or address not in attempt.addresses:
            connection.close()
            raise aiohttp.ClientConnectionError(f"connected to an unvetted address {peer!r}")
        attempt.peer = str(address)
        return connection


def _address(peer: Any) -> IPAddress | None:
    try:
        return ip_address(str(peer[0]).partition("%")[0])
    except (TypeError, IndexError, ValueError):
        return None


def _result(host: str, address: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return {
        "hostname": host,
        "host": str(address),
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    }


async def system_lookup(host: str, port: int) -> tuple[IPAddress, ...]:
    """The host's addresses from the system resolver (``getaddrinfo``), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if family == socket.AF_INET6 and "%" not in text and len(sockaddr) > 3 and sockaddr[3]:
            text = f"{text}%{sockaddr[3]}"
        address = ip_address(text)
        if address not in found:
            found.append(address)
    return tuple(found)


def _parse_overrides(
    resolve: Mapping[str, str | tuple[str, ...]],
) -> dict[str, tuple[IPAddress, ...]]:
    out: dict[str, tuple[IPAddress, ...]] = {}
    for host, value in resolve.items():
        texts = (value,) if isinstance(value, str) else value
        addresses = tuple(ip_address(t.strip()) for text in texts for t in text.split(","))
        if not addresses:
            raise ValueError(f"cimd.fetch.resolve: no address for {host}")
        out[host.lower().rstrip(".")] = addresses
    return out


# --------------------------------------------------------------------------- the fetcher


class DocumentFetcher:
    """Fetches, checks and caches metadata documents; one per gateway process.

    ``start()`` opens the HTTP client (in the running loop), ``close()`` closes it and
    cancels fetches under way.  ``lookup`` replaces the system resolver (tests).
    ``observe`` is told how each fetch that was not a cache hit ended: ``ok`` or the
    failure's rule id, and its time in seconds when it reached the network (the
    metrics)."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        lookup: Lookup | None = None,
        observe: Callable[[str, float | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self._observe = observe
        self._overrides = _parse_overrides(settings.resolve)
        self._lookup: Lookup = lookup or system_lookup
        self._cache = DocumentCache(settings.cache_size)
        self._limiter = HostRateLimiter(settings.per_host_rate, settings.per_host_window)
        self._inflight: dict[str, asyncio.Task[Fetched]] = {}
        self._resolver = PinnedResolver()
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = VettedConnector(
            resolver=self._resolver,
            use_dns_cache=False,
            ssl=self._ssl_context(),
            force_close=True,  # every fetch connects to the addresses it vetted itself
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            auto_decompress=False,
            trust_env=False,  # never through an HTTP(S)_PROXY from the environment
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={
                "User-Agent": self.settings.user_agent,
                "Accept": _JSON_TYPE,
                "Accept-Encoding": "identity",
            },
            read_bufsize=max(2 * _CHUNK, self.settings.max_bytes + 1),
        )

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ssl_context(self) -> ssl.SSLContext:
        """The system trust store plus ``ca_file`` (``create_default_context(cafile=)``
        alone would drop the system store)."""
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.settings.ca_file is not None:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        return context

    # -- the cache ---------------------------------------------------------------------

    def cached(self, url: str, *, now: float | None = None) -> Fetched | None:
        """The cached, still fresh document for ``url``, or ``None``; never fetches."""
        entry = self._cache.get(url, time.time() if now is None else now)
        return None if entry is None else _copy(entry, cache_hit=True, elapsed_ms=0.0)

    def invalidate(self, url: str) -> None:
        """Forget the cached document for ``url`` (the next fetch goes to the network)."""
        self._cache.pop(url)

    # -- fetching ----------------------------------------------------------------------

    async def fetch(
        self, url: str, *, now: float | None = None, max_bytes: int | None = None
    ) -> Fetched:
        """The document at ``url``, from the cache or the network; raises
        :class:`FetchError`.  Concurrent calls for one URL share one network fetch, and
        its failure reaches each of them.  ``max_bytes`` replaces the configured cap (a
        client's key set, which may hold several keys)."""
        now = time.time() if now is None else now
        hit = self.cached(url, now=now)
        if hit is not None:
            return hit
        target = validate_url(url)
        task = self._inflight.get(url)
        joined = task is not None
        if task is None:
            cap = self.settings.max_bytes if max_bytes is None else max_bytes
            task = asyncio.get_running_loop().create_task(self._fetch_and_cache(target, now, cap))
            self._inflight[url] = task
            task.add_done_callback(self._forget(url))
        try:
            fetched = await asyncio.shield(task)
        except FetchError as exc:
            raise (exc.clone() if joined else exc) from None
        return _copy(fetched)

    def _forget(self, url: str) -> Callable[[asyncio.Task[Fetched]], None]:
        def done(task: asyncio.Task[Fetched]) -> None:
            if self._inflight.get(url) is task:
                del self._inflight[url]
            if not task.cancelled():
                task.exception()  # retrieved: waiters may all have been cancelled

        return done

    async def _fetch_and_cache(self, target: Target, now: float, max_bytes: int) -> Fetched:
        retry = self._limiter.acquire(target.host, now)
        if retry is not None:
            self._observed(RATE_LIMITED, None)
            raise FetchError(
                RATE_LIMITED,
                f"too many metadata documents were fetched from {target.host} lately; "
                f"try again in {int(retry) + 1} s",
                retry_after=retry,
            )
        started = time.perf_counter()
        try:
            fetched = await self._fetch_network(target, now, started, max_bytes)
        except FetchError as exc:
            exc.elapsed_ms = _ms(started)
            self._observed(exc.rule, time.perf_counter() - started)
            raise
        self._observed("ok", time.perf_counter() - started)
        self._cache.put(fetched)
        return fetched

    def _observed(self, outcome: str, seconds: float | None) -> None:
        if self._observe is not None:
            self._observe(outcome, seconds)

    async def _fetch_network(
        self, target: Target, now: float, started: float, max_bytes: int
    ) -> Fetched:
        session = self._session
        if session is None:
            raise RuntimeError("DocumentFetcher.start() was not called")
        try:
            async with asyncio.timeout(self.settings.timeout):
                addresses = await self._vetted_addresses(target)
                with pinned(target.host, addresses) as attempt:
                    return await self._get(session, target, attempt, now, started, max_bytes)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(
                TIMEOUT,
                f"fetching the metadata document from {target.host} took longer than "
                f"{self.settings.timeout:g} s",
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise FetchError(
                TLS,
                f"the TLS certificate of {target.host} did not verify",
                detail=f"TLS with {target.host} failed: {exc}",
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchError(
                FAILED,
                f"the metadata document server {target.host} could not be reached",
                detail=f"fetching {target.request_url} failed: {type(exc).__name__}: {exc}",
            ) from None

    async def _vetted_addresses(self, target: Target) -> tuple[IPAddress, ...]:
        """Resolve once (the override or DNS) and refuse unless every address is fine."""
        addresses = self._overrides.get(target.host)
        if addresses is None:
            try:
                addresses = await self._lookup(target.host, target.port)
            except OSError as exc:  # socket.gaierror included
                raise FetchError(
                    FAILED,
                    f"the host {target.host} could not be resolved",
                    detail=f"resolving {target.host} failed: {exc}",
                ) from None
        if not addresses:
            raise FetchError(FAILED, f"the host {target.host} has no IPv4 or IPv6 address")
        for address in addresses:
            problem = address_problem(address, self.settings.allow_private_addresses)
            if problem is not None:
                raise FetchError(
                    PRIVATE_ADDRESS,
                    f"the host {target.host} resolves to a special-use address (RFC 6890), "
                    "which the server does not fetch from",
                    detail=f"{target.host} resolves to {address}: {problem}",
                )
        return addresses

    async def _get(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        attempt: Attempt,
        now: float,
        started: float,
        max_bytes: int,
    ) -> Fetched:
        async with session.get(URL(target.request_url, encoded=True), allow_redirects=False) as r:
            address = attempt.peer or ""
            try:
                _check_head(r, target, max_bytes)
                body = await _read_capped(r, max_bytes)
            except FetchError as exc:
                exc.status, exc.address = r.status, address
                r.close()
                raise
            try:
                document = parse_document(body)
            except FetchError as exc:
                exc.status, exc.address = r.status, address
                raise
            lifetime = cache_lifetime(
                r.headers,
                now,
                min_age=self.settings.min_cache_age,
                max_age=self.settings.max_cache_age,
            )
            return Fetched(
                url=target.url,
                document=document,
                fetched_at=now,
                expires_at=now + lifetime,
                cache_hit=False,
                status=r.status,
                elapsed_ms=_ms(started),
                address=address,
                has_query=target.has_query,
            )


# --------------------------------------------------------------------------- the response


def _check_head(response: aiohttp.ClientResponse, target: Target, max_bytes: int) -> None:
    """Status, encoding, type and announced length, before any of the body is read."""
    status = response.status
    if 300 <= status < 400:
        raise FetchError(
            REDIRECT,
            f"the metadata document server answered {status}, a redirect; redirects are "
            "not followed (draft-ietf-oauth-client-id-metadata-document)",
            detail=f"{target.request_url} answered {status} to "
            f"{response.headers.get('Location', '(no Location)')[:300]!r}",
        )
    if status != 200:
        raise FetchError(
            STATUS, f"the metadata document server answered {status}; only 200 is accepted"
        )
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError(
            CONTENT_ENCODING,
            f"the metadata document came with Content-Encoding {encoding[:40]}; only an "
            "unencoded body is accepted",
        )
    if response.content_type != _JSON_TYPE:
        raise FetchError(
            CONTENT_TYPE,
            f"the metadata document is {response.content_type[:80]}, not application/json "
            "(a challenge or error page?)",
        )
    charset = response.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise FetchError(CONTENT_TYPE, f"the metadata document is in {charset[:40]}, not UTF-8")
    length = response.content_length
    if length is not None and length > max_bytes:
        raise FetchError(
            TOO_LARGE,
            f"the metadata document is {length} bytes; at most {max_bytes} are accepted",
        )


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, counting the bytes read: one more than ``max_bytes`` and the read stops."""
    body = bytearray()
    while len(body) <= max_bytes:
        chunk = await response.content.read(min(_CHUNK, max_bytes + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
    raise FetchError(TOO_LARGE, f"the metadata document is larger than {max_bytes} bytes (the cap)")


def _copy(fetched: Fetched, **changes: Any) -> Fetched:
    """A copy whose document the caller may change without touching the cache."""
    return replace(fetched, document=copy.deepcopy(fetched.document), **changes)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
