"""Strict parsing, hygiene checks and normalization of OAuth redirect URIs.

Why a parser of our own: a redirect URI decides where an authorization code is delivered
(RFC 6749 §3.1.2, §10.6), so the gateway must read it exactly as the most lenient consumer
downstream (a browser following WHATWG URL, an authorization server, a client library) could
read it, and refuse everything on which those readers might disagree.  ``urllib.parse`` is
built to be forgiving (it accepts ``\\``, unbalanced brackets, any port text, raw non-ASCII,
and it never checks the host), so it is not used here.

A redirect URI goes through these stages, in this order; the first failure wins, so the rule
id reported for a URI with several problems is deterministic (see ``docs/redirect-uris.md``):

1. length (``redirect_uri.too_long``), raw control or whitespace characters
   (``redirect_uri.control_character``);
2. the scheme: ``redirect_uri.relative``, ``redirect_uri.dangerous_scheme``, then scheme
   syntax (``redirect_uri.malformed``);
3. hygiene over the whole string, most dangerous first: ``redirect_uri.backslash``,
   ``redirect_uri.fragment``, ``redirect_uri.encoded_separator``, percent-encoded controls
   (``redirect_uri.control_character``), ``redirect_uri.userinfo``,
   ``redirect_uri.dot_segment``, ``redirect_uri.wildcard``;
4. strict RFC 3986 parsing, left to right (host, port, path, query), which reports
   ``redirect_uri.no_host``, ``redirect_uri.malformed`` or, for internationalized hosts
   whose ASCII form differs between IDNA implementations, ``redirect_uri.unstable_host``
   (see :mod:`gateway.uri.hosts`);
5. ``redirect_uri.insecure_http``.

The same parser reads URL-valued client metadata (:func:`parse_metadata_url`: ``jwks_uri``,
``logo_uri``, ``request_uris``, ...), with stricter rules for URLs that are fetched: https,
a public DNS name, no IP address in any notation.

Normalization follows RFC 3986 §6.2.2 (case and percent-encoding) and §6.2.3 (scheme-based:
default port dropped, empty path as ``/``) plus IDNA (UTS #46) for hosts, so that two
spellings of one URI compare equal and every spelling a browser would resolve to another host
compares unequal.  Everything here is pure: no I/O, no DNS.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from gateway.errors import quote_value
from gateway.rules import URI_RULES
from gateway.uri.hosts import HostError, internal_host_problem, is_ip_address, normalize_host

#: Longest redirect URI accepted, in characters.  Real redirect URIs are far shorter; a
#: longer one is either an attack (a payload smuggled in a query) or a mistake, and long
#: values are costly to log and to compare.
MAX_LENGTH = 2000

TOO_LONG = "redirect_uri.too_long"
CONTROL_CHARACTER = "redirect_uri.control_character"
RELATIVE = "redirect_uri.relative"
DANGEROUS_SCHEME = "redirect_uri.dangerous_scheme"
BACKSLASH = "redirect_uri.backslash"
FRAGMENT = "redirect_uri.fragment"
ENCODED_SEPARATOR = "redirect_uri.encoded_separator"
USERINFO = "redirect_uri.userinfo"
DOT_SEGMENT = "redirect_uri.dot_segment"
WILDCARD = "redirect_uri.wildcard"
MALFORMED = "redirect_uri.malformed"
UNSTABLE_HOST = "redirect_uri.unstable_host"
NO_HOST = "redirect_uri.no_host"
INSECURE_HTTP = "redirect_uri.insecure_http"
#: Not produced by :func:`parse_redirect_uri`; a policy that denies loopback redirect URIs
#: refuses them with this id (see :func:`gateway.policy.patterns.loopback_refusal`).
LOOPBACK_DENIED = "redirect_uri.loopback_denied"

#: Every rule id this parser produces, in the order the checks run, with its meaning from
#: the rule registry.  ``redirect_uri.malformed`` is reported at two stages: scheme syntax
#: (right after the scheme checks) and strict component parsing (after all hygiene checks).
RULES: dict[str, str] = {
    rule_id: URI_RULES[rule_id.removeprefix("redirect_uri.")]
    for rule_id in (
        TOO_LONG,
        CONTROL_CHARACTER,
        RELATIVE,
        DANGEROUS_SCHEME,
        BACKSLASH,
        FRAGMENT,
        ENCODED_SEPARATOR,
        USERINFO,
        DOT_SEGMENT,
        WILDCARD,
        MALFORMED,
        UNSTABLE_HOST,
        NO_HOST,
        INSECURE_HTTP,
        LOOPBACK_DENIED,
    )
}

#: Schemes that execute script, embed content or read local resources when navigated to.
DANGEROUS_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
#: Schemes whose authority is a network host (RFC 9110 §4.2): hosts get IDNA, ports defaults.
WEB_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
#: Loopback hosts after normalization (RFC 8252 §7.3, §8.3).  Each is a distinct host.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]", "localhost"})

_SHOW_LIMIT = 200

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# The first character that ends a would-be scheme.  A "\" counts: WHATWG reads it as "/".
_SCHEME_END_RE = re.compile(r"[:/?#\\]")
# RFC 3986 §3.3 path characters (pchar and "/"), §3.4 query characters (adds "?").
_PATH_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_QUERY_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
# Authority of a private-use scheme: reg-name and port characters only, no percent-encoding.
_OPAQUE_AUTHORITY_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:]*")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_PCT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SEPARATOR_RE = re.compile(r"%(?:2f|5c)", re.IGNORECASE)
_ENCODED_CONTROL_RE = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")
_PORT_RE = re.compile(r"[0-9]+")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True, slots=True)
class RedirectURI:
    """A redirect URI that passed every hygiene rule, in normalized form.

    ``host`` is lower-case; for http(s) it is the IDNA A-label form (UTS #46 with STD3
    rules), canonical dotted-quad IPv4, or compressed IPv6 in brackets, with one trailing dot
    removed.  For private-use schemes (RFC 8252 §7.1) it is the whole authority, lower-cased
    and otherwise opaque, or ``None`` when the URI has no authority.
    """

    raw: str
    scheme: str
    host: str | None
    port: int | None
    path: str
    query: str | None
    is_loopback: bool
    is_web: bool

    def normalized(self) -> str:
        """The canonical string form, used for matching and in audit records.

        Two redirect URIs with equal normalized forms are the same endpoint to every
        consumer; the gateway compares these, never the raw strings.
        """
        query = "" if self.query is None else f"?{self.query}"
        if self.is_web:
            port = "" if self.port is None else f":{self.port}"
            return f"{self.scheme}://{self.host}{port}{self.path}{query}"
        authority = "" if self.host is None else f"//{self.host}"
        return f"{self.scheme}:{authority}{self.path}{query}"


@dataclass(frozen=True, slots=True)
class URIRefusal:
    """Why a redirect URI was refused: a stable rule id from :data:`RULES` and a sentence.

    A bare yes/no leaves operators unable to tell a typo from an attack, so every refusal
    names its rule and the offending part of the URI.
    """

    rule: str
    description: str
    #: A finer reason within ``rule`` that another use of the parser needs
    #: (``ip_address``: the host is an IPv4 number in a non-canonical spelling).
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class URIParts:
    """The components of a URI or of a policy pattern, normalized.

    Shared by :func:`parse_redirect_uri` and :func:`gateway.policy.patterns.compile_pattern`
    so that a pattern is read by exactly the same rules as the URIs it will be compared to.
    ``host_wildcard`` (a leading ``*.`` label, stored without it in ``host``) and
    ``any_port`` (``:*``) can only be true for patterns.
    """

    scheme: str
    host: str | None
    host_wildcard: bool
    port: int | None
    any_port: bool
    path: str
    query: str | None
    is_loopback: bool
    is_web: bool


@functools.lru_cache(maxsize=2048)
def parse_redirect_uri(raw: str) -> RedirectURI | URIRefusal:
    """Parse, check and normalize one redirect URI; never raises for any ``str`` input.

    Pure, so its results are cached: one decision looks at a URI more than once (the
    allow lists, then the identity checks), and clients repeat the same few URIs.

    The checks and their order are described in the module docstring and in
    ``docs/redirect-uris.md``.  A :class:`RedirectURI` is returned only when every rule passes.
    """
    parts = parse_parts(raw)
    if isinstance(parts, URIRefusal):
        return parts
    return _uri(raw, parts)


def _uri(raw: str, parts: URIParts) -> RedirectURI:
    return RedirectURI(
        raw=raw,
        scheme=parts.scheme,
        host=parts.host,
        port=parts.port,
        path=parts.path,
        query=parts.query,
        is_loopback=parts.is_loopback,
        is_web=parts.is_web,
    )


#: Rule ids of :func:`parse_metadata_url` that have no redirect URI counterpart.
NOT_HTTPS = "metadata_url.not_https"
IP_ADDRESS = "metadata_url.ip_address"
INTERNAL_HOST = "metadata_url.internal_host"


@functools.lru_cache(maxsize=2048)
def parse_metadata_url(raw: str) -> RedirectURI | URIRefusal:
    """Parse a URL-valued metadata field with the redirect URI rules plus: ``https``, a DNS
    host name (no IP literal in any IPv4 or IPv6 notation, no ``localhost``, no single-label
    host, no special-use or private suffix).  The authorization server fetches ``jwks_uri``,
    ``sector_identifier_uri`` and ``request_uris`` itself, and browsers (or, at MITREid, the
    server) fetch ``logo_uri``: each is an SSRF surface (Keycloak CVE-2026-1180 and
    CVE-2026-4366, MITREid CVE-2021-26715).  Rule ids are ``metadata_url.*``."""
    parts = parse_parts(raw)
    if isinstance(parts, URIRefusal):
        suffix = parts.rule.removeprefix("redirect_uri.")
        if parts.detail == "ip_address":
            suffix = "ip_address"
        elif suffix == "insecure_http":
            suffix = "not_https"
        return URIRefusal(f"metadata_url.{suffix}", parts.description)
    if parts.scheme != "https":
        return _refuse(NOT_HTTPS, raw, "must be an https URL")
    host = parts.host or ""
    if is_ip_address(host):
        return _refuse(
            IP_ADDRESS, raw, "names an IP address; a URL the server fetches must name a DNS host"
        )
    problem = internal_host_problem(host)
    if problem is not None:
        return _refuse(INTERNAL_HOST, raw, f"cannot be fetched safely: {problem}")
    return _uri(raw, parts)  # https on a public name: never loopback


def parse_parts(raw: str, *, pattern: bool = False) -> URIParts | URIRefusal:
    """Run every check on ``raw`` and return its normalized components.

    With ``pattern=True`` the text is a policy pattern: a ``*`` is accepted where the
    pattern language gives it a meaning (a whole leftmost host label ``*.``, the port
    ``:*``, inside path segments and a private-use authority, and the whole query ``?*``)
    and refused with an explanation anywhere else.  All other rules are the same, so a
    pattern that breaks one could never match a URI that passes it.
    """
    if len(raw) > MAX_LENGTH:
        return _refuse(TOO_LONG, raw, f"is {len(raw):,} characters long (limit {MAX_LENGTH:,})")
    position = _find_invisible(raw)
    if position is not None:
        return _refuse(
            CONTROL_CHARACTER,
            raw,
            f"contains {_name_char(raw[position])} at position {position}; controls, "
            "whitespace and invisible characters hide what the URI really says",
        )
    end = _SCHEME_END_RE.search(raw)
    if end is None or end.group() != ":":
        return _refuse(
            RELATIVE, raw, "has no scheme; a redirect URI must be absolute (RFC 6749 §3.1.2)"
        )
    scheme_text = raw[: end.start()]
    scheme = scheme_text.lower() if scheme_text.isascii() else scheme_text
    if scheme in DANGEROUS_SCHEMES:
        return _refuse(
            DANGEROUS_SCHEME,
            raw,
            f"uses the {scheme}: scheme, which runs code or reads local data when navigated to",
        )
    if not _SCHEME_RE.fullmatch(scheme_text):
        why = "a '*' cannot stand for a scheme" if "*" in scheme_text else "RFC 3986 §3.1"
        return _refuse(MALFORMED, raw, f"has an invalid scheme {scheme_text!r} ({why})")
    refusal = _hygiene(raw, raw[end.end() :], pattern=pattern)
    if refusal is not None:
        return refusal
    rest = raw[end.end() :]
    if scheme in WEB_SCHEMES:
        return _parse_web(raw, scheme, rest, pattern=pattern)
    return _parse_opaque(raw, scheme, rest, pattern=pattern)


def _hygiene(raw: str, rest: str, *, pattern: bool) -> URIRefusal | None:
    """Stage 3: rules that hold whatever the scheme, most dangerous first.

    Each looks at every level of percent-decoding, because a component that is decoded twice
    somewhere downstream (``%252e`` -> ``%2e`` -> ``.``) must not hide a separator, a ``..``
    or an ``@`` from the gateway (RFC 3986 §2.4: decoding twice is a known source of bugs).
    """
    if "\\" in raw:
        return _refuse(
            BACKSLASH,
            raw,
            "contains a backslash; browsers treat '\\' as '/', so the host they see can differ "
            "from the host an RFC 3986 parser sees",
        )
    if "#" in raw:
        return _refuse(
            FRAGMENT,
            raw,
            "contains a fragment ('#'); RFC 6749 §3.1.2 forbids fragments in redirect URIs",
        )
    authority, path, _query = _split(rest)
    # Only where a separator means something: an encoded '/' in the query is ordinary
    # (``?next=https%3A%2F%2F...``), and a raw '/' is allowed there anyway (RFC 3986 §3.4).
    before_query = _decode_levels((authority or "") + path)
    if any(_ENCODED_SEPARATOR_RE.search(level) for level in before_query):
        return _refuse(
            ENCODED_SEPARATOR,
            raw,
            "contains an encoded '/' or '\\' (%2F or %5C, possibly double-encoded) in its "
            "host or path, which a server that decodes the path would treat as a separator",
        )
    levels = _decode_levels(raw)
    if any(_ENCODED_CONTROL_RE.search(level) for level in levels):
        return _refuse(
            CONTROL_CHARACTER,
            raw,
            "contains a percent-encoded control character (%00-%1F or %7F), used for header "
            "injection and string truncation",
        )
    if authority is not None and any("@" in level for level in _decode_levels(authority)):
        return _refuse(
            USERINFO,
            raw,
            "has '@' in its authority; userinfo (RFC 3986 §3.2.1) makes the visible text "
            "before '@' look like the host while the real host follows it",
        )
    for segment in path.split("/"):
        if any(_is_dot_segment(level) for level in _decode_levels(segment)):
            return _refuse(
                DOT_SEGMENT,
                raw,
                f"has the dot segment {segment!r}; '.' and '..' (raw or percent-encoded) are "
                "resolved away by RFC 3986 §5.2.4 and browsers, escaping the registered path",
            )
    if not pattern and "*" in raw:
        return _refuse(
            WILDCARD,
            raw,
            "contains a literal '*'; a registered redirect URI must be exact (wildcards are "
            "only meaningful in policy patterns)",
        )
    return None


def _parse_web(raw: str, scheme: str, rest: str, *, pattern: bool) -> URIParts | URIRefusal:
    """Stage 4 and 5 for http and https: host, port, path, query, then transport security."""
    authority, path, query = _split(rest)
    if authority is None:
        return _refuse(NO_HOST, raw, f"has no authority; an {scheme} URI needs '//host'")
    split = _split_host_port(raw, authority)
    if isinstance(split, URIRefusal):
        return split
    host_text, port_text = split
    if host_text == "":
        return _refuse(NO_HOST, raw, f"has an empty host; an {scheme} URI needs a host")
    try:
        host_name, host_wildcard = normalize_host(host_text, pattern=pattern)
    except HostError as exc:
        rule = UNSTABLE_HOST if exc.kind == "unstable_host" else MALFORMED
        detail = "ip_address" if exc.kind == "ip_number" else None
        return _refuse(rule, raw, exc.problem, detail)
    port = _parse_port(raw, scheme, port_text, pattern=pattern)
    if isinstance(port, URIRefusal):
        return port
    port_value, any_port = port
    path_norm = _check_component(raw, "path", path, _PATH_RE)
    if isinstance(path_norm, URIRefusal):
        return path_norm
    query_norm = _check_query(raw, query, pattern=pattern)
    if isinstance(query_norm, URIRefusal):
        return query_norm
    is_loopback = not host_wildcard and host_name in LOOPBACK_HOSTS
    if scheme == "http" and not is_loopback:
        return _refuse(
            INSECURE_HTTP,
            raw,
            "uses http on a host that is not loopback; only 127.0.0.1, [::1] and localhost may "
            "use http (RFC 8252 §8.3, RFC 6749 §3.1.2.1): anyone on the path could read the code",
        )
    return URIParts(
        scheme=scheme,
        host=host_name,
        host_wildcard=host_wildcard,
        port=port_value,
        any_port=any_port,
        path=path_norm or "/",
        query=query_norm,
        is_loopback=is_loopback,
        is_web=True,
    )


def _parse_opaque(raw: str, scheme: str, rest: str, *, pattern: bool) -> URIParts | URIRefusal:
    """Stage 4 for private-use schemes (RFC 8252 §7.1): the authority is kept opaque.

    Such a scheme names an app, not a network host, so IDNA, default ports and loopback do
    not apply; the authority is only lower-cased (RFC 3986 §6.2.2.1) and must not contain
    percent-encoding or non-ASCII text, so that it has exactly one spelling.
    """
    authority, path, query = _split(rest)
    host: str | None = None
    if authority is not None:
        if not _OPAQUE_AUTHORITY_RE.fullmatch(authority):
            bad = next(c for c in authority if not _OPAQUE_AUTHORITY_RE.fullmatch(c))
            return _refuse(
                MALFORMED,
                raw,
                f"has {_name_char(bad)} in the authority of a private-use scheme; only "
                "unreserved characters, sub-delimiters and ':' are accepted there",
            )
        host = authority.lower()
    path_norm = _check_component(raw, "path", path, _PATH_RE)
    if isinstance(path_norm, URIRefusal):
        return path_norm
    query_norm = _check_query(raw, query, pattern=pattern)
    if isinstance(query_norm, URIRefusal):
        return query_norm
    return URIParts(
        scheme=scheme,
        host=host,
        host_wildcard=False,
        port=None,
        any_port=False,
        path=path_norm,
        query=query_norm,
        is_loopback=False,
        is_web=False,
    )


def _split(rest: str) -> tuple[str | None, str, str | None]:
    """Split what follows ``scheme:`` into authority, path and query (RFC 3986 §3).

    Called only once backslashes and fragments are ruled out, so ``/`` and ``?`` are the only
    delimiters left.  The authority is ``None`` when ``//`` is absent; the query is ``None``
    when there is no ``?`` and ``""`` for a bare ``?``.
    """
    authority: str | None = None
    if rest.startswith("//"):
        after = rest[2:]
        cut = len(after)
        for delimiter in "/?":
            found = after.find(delimiter)
            if 0 <= found < cut:
                cut = found
        authority, rest = after[:cut], after[cut:]
    path, mark, query = rest.partition("?")
    return authority, path, (query if mark else None)


def _split_host_port(raw: str, authority: str) -> tuple[str, str | None] | URIRefusal:
    """Split an authority into host text and port text (RFC 3986 §3.2.2, §3.2.3)."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            return _refuse(MALFORMED, raw, "has an IPv6 address without its closing ']'")
        host_text, after = authority[: close + 1], authority[close + 1 :]
        if after == "":
            return host_text, None
        if not after.startswith(":"):
            return _refuse(MALFORMED, raw, f"has {after!r} after the IPv6 address")
        return host_text, after[1:]
    if "[" in authority or "]" in authority:
        return _refuse(MALFORMED, raw, "has '[' or ']' outside an IPv6 address")
    host_text, colon, port_text = authority.partition(":")
    if ":" in port_text:
        return _refuse(
            MALFORMED, raw, "has more than one ':' in its authority (IPv6 needs brackets)"
        )
    return host_text, (port_text if colon else None)


def _parse_port(
    raw: str, scheme: str, text: str | None, *, pattern: bool
) -> tuple[int | None, bool] | URIRefusal:
    """Port as ``(value, any_port)``: empty or default ports become ``None`` (RFC 3986 §6.2.3)."""
    if text is None or text == "":
        return None, False
    if pattern and text == "*":
        return None, True
    if "*" in text:
        return _refuse(MALFORMED, raw, "has a '*' in its port; only ':*' (any port) is allowed")
    if not _PORT_RE.fullmatch(text):
        return _refuse(MALFORMED, raw, f"has the port {text!r}, which is not a decimal number")
    value = int(text)
    if not 0 < value <= 65535:
        return _refuse(MALFORMED, raw, f"has the port {value}, outside 1-65535")
    return (None if DEFAULT_PORTS.get(scheme) == value else value), False


def _check_component(raw: str, name: str, text: str, allowed: re.Pattern[str]) -> str | URIRefusal:
    """Check a path or query against RFC 3986 §3.3/§3.4 and normalize its percent-encoding."""
    if not allowed.fullmatch(text):
        bad = next(c for c in text if not allowed.fullmatch(c))
        why = "non-ASCII text must be percent-encoded" if not bad.isascii() else "RFC 3986"
        return _refuse(MALFORMED, raw, f"has {_name_char(bad)} in its {name} ({why})")
    if _BAD_PCT_RE.search(text):
        return _refuse(MALFORMED, raw, f"has a '%' not followed by two hex digits in its {name}")
    return _normalize_percent(text)


def _check_query(raw: str, query: str | None, *, pattern: bool) -> str | URIRefusal | None:
    """A query: ``None`` when absent; in a pattern ``*`` may only be the whole query."""
    if query is None:
        return None
    if pattern and "*" in query and query != "*":
        return _refuse(
            MALFORMED,
            raw,
            "has a '*' inside its query; a pattern query is exact, or '?*' for any query",
        )
    return _check_component(raw, "query", query, _QUERY_RE)


def _normalize_percent(text: str) -> str:
    """RFC 3986 §6.2.2.1-2: decode unreserved characters, upper-case all other escapes."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PCT_RE.sub(fix, text)


def _decode_levels(text: str) -> list[str]:
    """``text`` and each successive full percent-decoding of it, until nothing changes.

    Decoding shortens the text by two characters per escape, so this always ends.
    """
    levels = [text]
    while "%" in text:
        decoded = _PCT_RE.sub(_decode_escape, text)
        if decoded == text:
            break
        levels.append(decoded)
        text = decoded
    return levels


def _is_dot_segment(segment: str) -> bool:
    """``.`` or ``..``, also with ``;parameters``: Java servlet containers drop everything
    after ``;`` in a segment before resolving dots, so ``..;x`` climbs a level there."""
    return segment.partition(";")[0] in (".", "..")


def _decode_escape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def _find_invisible(raw: str) -> int | None:
    """Index of the first control, whitespace or invisible character, if any.

    Refused: C0 and C1 controls, DEL, every character Unicode calls whitespace (Zs, Zl,
    Zp, the ASCII space included) and format characters (Cf: zero-width spaces and joiners,
    bidi overrides, soft hyphen), which are invisible when displayed and some of which
    UTS #46 silently deletes from host names.  ``str.isprintable`` refuses exactly these
    plus unassigned and private-use code points, so the scan runs in C and a binary search
    finds the position; the first non-printable being unassigned or private-use is left to
    the later rules (they refuse it too).
    """
    if raw.isascii():
        found = _ASCII_CONTROL_RE.search(raw)
        return None if found is None else found.start()
    space = raw.find(" ")
    if raw.isprintable():
        return space if space >= 0 else None
    low, high = 0, len(raw)  # raw[:low] is printable, raw[:high] is not
    while high - low > 1:
        middle = (low + high) // 2
        if raw[:middle].isprintable():
            low = middle
        else:
            high = middle
    if unicodedata.category(raw[high - 1]) in ("Cn", "Co"):
        # Unreadable, but not invisible: a host refuses it as unstable, a path or query
        # as not percent-encoded, with a rule that says so.
        return space if space >= 0 else None
    return min(high - 1, space) if space >= 0 else high - 1


def _name_char(char: str) -> str:
    """A readable name for a character in a message, safe to log."""
    name = unicodedata.name(char, "")
    shown = f" {name}" if name else ""
    if char.isprintable() and not char.isspace():
        return f"{char!r} (U+{ord(char):04X}{shown})"
    return f"U+{ord(char):04X}{shown}"


def _show(raw: str) -> str:
    """The URI for a message (:func:`gateway.errors.quote_value`)."""
    return quote_value(raw, _SHOW_LIMIT)


def _refuse(rule: str, raw: str, problem: str, detail: str | None = None) -> URIRefusal:
    return URIRefusal(rule=rule, description=f"{_show(raw)} {problem}", detail=detail)
