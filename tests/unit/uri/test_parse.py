"""Parsing, hygiene and normalization of redirect URIs (gateway.uri.parse)."""

from __future__ import annotations

import random

import idna
import pytest

from gateway.uri import parse as uris
from gateway.uri.parse import (
    RULES,
    RedirectURI,
    URIRefusal,
    parse_parts,
    parse_redirect_uri,
)


def ok(raw: str) -> RedirectURI:
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, RedirectURI), parsed
    return parsed


def refused(raw: str) -> URIRefusal:
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, URIRefusal), f"{raw!r} was accepted as {parsed}"
    return parsed


# --- normalization ----------------------------------------------------------------------

NORMALIZED = [
    # (raw, normalized form)
    ("HTTPS://My.Example.COM:443/oauth/callback", "https://my.example.com/oauth/callback"),
    ("https://bücher.example/cb", "https://xn--bcher-kva.example/cb"),
    ("https://BÜCHER.example/cb", "https://xn--bcher-kva.example/cb"),
    ("https://XN--BCHER-KVA.example/cb", "https://xn--bcher-kva.example/cb"),
    ("https://xn--fa-hia.de/cb", "https://xn--fa-hia.de/cb"),  # an A-label is stable
    (
        "https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/cb",
        "https://example.com/cb",
    ),  # fullwidth maps (UTS #46)
    ("https://example\u3002com/cb", "https://example.com/cb"),  # ideographic full stop
    ("https://example.com", "https://example.com/"),
    ("https://example.com?x=1", "https://example.com/?x=1"),
    ("https://example.com/?", "https://example.com/?"),
    ("https://example.com:/cb", "https://example.com/cb"),
    ("https://example.com:0443/cb", "https://example.com/cb"),
    ("http://localhost:80/cb", "http://localhost/cb"),
    ("https://example.com:80/cb", "https://example.com:80/cb"),
    ("http://localhost:443/cb", "http://localhost:443/cb"),
    ("https://example.com:8443/cb", "https://example.com:8443/cb"),
    ("https://example.com./cb", "https://example.com/cb"),
    ("http://localhost./cb", "http://localhost/cb"),
    ("https://example.com/%7e%7Euser", "https://example.com/~~user"),
    ("https://example.com/%41%62%2d%5F%2E", "https://example.com/Ab-_."),
    ("https://example.com/a%3db%3Fc", "https://example.com/a%3Db%3Fc"),
    ("https://example.com/cb?q=%e2%9c%93", "https://example.com/cb?q=%E2%9C%93"),
    ("https://example.com/CaSe/Path?Q=V", "https://example.com/CaSe/Path?Q=V"),
    ("https://example.com//double", "https://example.com//double"),
    ("https://example.com/a/", "https://example.com/a/"),
    ("http://[0:0:0:0:0:0:0:1]:8080/cb", "http://[::1]:8080/cb"),
    ("https://[2001:DB8::0001]/cb", "https://[2001:db8::1]/cb"),
    ("http://127.0.0.1:33418/", "http://127.0.0.1:33418/"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/cb", "https://127.0.0.1/cb"),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ),
    (
        "CURSOR://AnySphere.Cursor-MCP/oauth/Callback",
        "cursor://anysphere.cursor-mcp/oauth/Callback",
    ),
    ("warp://mcp/oauth2callback", "warp://mcp/oauth2callback"),
    ("com.example.app:/cb", "com.example.app:/cb"),
    ("com.example.app:/cb%7e?x=%2a", "com.example.app:/cb~?x=%2A"),
    ("myapp:///cb", "myapp:///cb"),
    ("com.example.app:cb", "com.example.app:cb"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZED, ids=[r for r, _ in NORMALIZED])
def test_normalized_form(raw: str, expected: str) -> None:
    parsed = ok(raw)
    assert parsed.normalized() == expected
    assert parsed.raw == raw
    # Normalization is idempotent.
    assert ok(expected).normalized() == expected


COMPONENTS = [
    # raw, scheme, host, port, path, query, is_loopback, is_web
    ("https://example.com", "https", "example.com", None, "/", None, False, True),
    ("https://example.com:8443/a?b", "https", "example.com", 8443, "/a", "b", False, True),
    ("https://example.com/a?", "https", "example.com", None, "/a", "", False, True),
    ("http://localhost:1234/callback", "http", "localhost", 1234, "/callback", None, True, True),
    ("http://LOCALHOST/cb", "http", "localhost", None, "/cb", None, True, True),
    ("http://localhost./cb", "http", "localhost", None, "/cb", None, True, True),
    ("http://127.0.0.1/cb", "http", "127.0.0.1", None, "/cb", None, True, True),
    ("http://[::1]:9/cb", "http", "[::1]", 9, "/cb", None, True, True),
    ("http://[0:0:0:0:0:0:0:1]:8080/cb", "http", "[::1]", 8080, "/cb", None, True, True),
    ("https://localhost/cb", "https", "localhost", None, "/cb", None, True, True),
    ("https://127.0.0.2/cb", "https", "127.0.0.2", None, "/cb", None, False, True),
    ("https://localhost.example/cb", "https", "localhost.example", None, "/cb", None, False, True),
    ("https://[::ffff:127.0.0.1]/cb", "https", "[::ffff:7f00:1]", None, "/cb", None, False, True),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor",
        "anysphere.cursor-mcp",
        None,
        "/oauth/callback",
        None,
        False,
        False,
    ),
    ("com.example.app:/cb", "com.example.app", None, None, "/cb", None, False, False),
    ("myapp:///cb", "myapp", "", None, "/cb", None, False, False),
    ("myapp://host:99/cb", "myapp", "host:99", None, "/cb", None, False, False),
    ("myapp://localhost/cb", "myapp", "localhost", None, "/cb", None, False, False),
    ("urn:ietf:wg:oauth:2.0:oob", "urn", None, None, "ietf:wg:oauth:2.0:oob", None, False, False),
]


@pytest.mark.parametrize(
    ("raw", "scheme", "host", "port", "path", "query", "loopback", "web"),
    COMPONENTS,
    ids=[c[0] for c in COMPONENTS],
)
def test_components(
    raw: str,
    scheme: str,
    host: str | None,
    port: int | None,
    path: str,
    query: str | None,
    loopback: bool,
    web: bool,
) -> None:
    parsed = ok(raw)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path, parsed.query) == (
        scheme,
        host,
        port,
        path,
        query,
    )
    assert parsed.is_loopback is loopback
    assert parsed.is_web is web


def test_private_use_scheme_without_slashes_is_a_different_uri() -> None:
    assert (
        ok("cursor:/anysphere.cursor-mcp/oauth/callback").normalized()
        != ok("cursor://anysphere.cursor-mcp/oauth/callback").normalized()
    )


def test_redirect_uri_is_immutable() -> None:
    parsed = ok("https://example.com/cb")
    with pytest.raises(AttributeError):
        parsed.host = "evil.com"  # type: ignore[misc]


# --- refusals: one table, every rule with the URIs it must catch -------------------------

REFUSED = [
    # unstable_host: the ASCII form differs between IDNA implementations (UTS #46 §6)
    ("https://faß.de/cb", "redirect_uri.unstable_host"),  # deviation: fass or xn--fa-hia
    ("https://stra\u1e9ee.tenant.example.com/cb", "redirect_uri.unstable_host"),  # U+1E9E
    ("https://\u03c2.example.com/cb", "redirect_uri.unstable_host"),  # final sigma
    ("https://\u1c89x.example.com/cb", "redirect_uri.unstable_host"),  # Unicode 16 letter
    # too_long: over 2,000 characters, checked first
    ("https://example.com/" + "a" * 1981, "redirect_uri.too_long"),
    ("https://example.com/cb#" + "a" * 2000, "redirect_uri.too_long"),
    ("\x00" * 2001, "redirect_uri.too_long"),
    # control_character: C0, C1, DEL, whitespace anywhere; invisible format characters
    ("https://example.com/\x00cb", "redirect_uri.control_character"),
    ("https://example.com/cb\r\nLocation: x", "redirect_uri.control_character"),
    ("https://example.com/c\tb", "redirect_uri.control_character"),
    ("https://example.com/cb ", "redirect_uri.control_character"),
    (" https://example.com/cb", "redirect_uri.control_character"),
    ("https://exa mple.com/cb", "redirect_uri.control_character"),
    ("https://example.com/\x7f", "redirect_uri.control_character"),
    ("https://example.com/\x85", "redirect_uri.control_character"),  # C1 NEL
    ("https://example.com/\x9b", "redirect_uri.control_character"),  # C1 CSI
    ("https://example.com/\u00a0", "redirect_uri.control_character"),  # no-break space
    ("https://example.com/\u3000", "redirect_uri.control_character"),  # ideographic space
    ("https://example.com/\u2028", "redirect_uri.control_character"),  # line separator
    ("https://exam\u200bple.com/", "redirect_uri.control_character"),  # zero-width space
    ("https://exam\u00adple.com/", "redirect_uri.control_character"),  # soft hyphen
    ("https://example.com/\u202ecb", "redirect_uri.control_character"),  # RTL override
    ("https://example.com/\ufeff", "redirect_uri.control_character"),  # BOM
    ("javascript:\nalert(1)", "redirect_uri.control_character"),
    ("https://example.com/%00", "redirect_uri.control_character"),  # encoded
    ("https://example.com/cb%0d%0aSet-Cookie:x", "redirect_uri.control_character"),
    ("https://example.com/cb?x=%7F", "redirect_uri.control_character"),
    ("https://example.com/cb%250a", "redirect_uri.control_character"),  # double-encoded
    # relative: no scheme
    ("/oauth/callback", "redirect_uri.relative"),
    ("//evil.com/cb", "redirect_uri.relative"),
    ("example.com/cb", "redirect_uri.relative"),
    ("cb", "redirect_uri.relative"),
    ("", "redirect_uri.relative"),
    ("?x=https://a", "redirect_uri.relative"),
    ("#frag", "redirect_uri.relative"),
    ("\\\\evil.com\\cb", "redirect_uri.relative"),
    ("./a:b", "redirect_uri.relative"),
    # dangerous_scheme, any case
    ("javascript:alert(1)", "redirect_uri.dangerous_scheme"),
    ("JavaScript://example.com/%0aalert(1)", "redirect_uri.dangerous_scheme"),
    ("data:text/html,<script>alert(1)</script>", "redirect_uri.dangerous_scheme"),
    ("DATA:text/html;base64,PHNjcmlwdD4=", "redirect_uri.dangerous_scheme"),
    ("file:///etc/passwd", "redirect_uri.dangerous_scheme"),
    ("vbscript:msgbox(1)", "redirect_uri.dangerous_scheme"),
    ("blob:https://example.com/uuid", "redirect_uri.dangerous_scheme"),
    ("about:blank", "redirect_uri.dangerous_scheme"),
    ("javascript:alert(1)#x", "redirect_uri.dangerous_scheme"),  # scheme wins over fragment
    # backslash anywhere
    ("https://example.com\\@evil.com/", "redirect_uri.backslash"),
    ("https:\\\\evil.com/cb", "redirect_uri.backslash"),
    ("https://example.com/a\\b", "redirect_uri.backslash"),
    ("https://example.com/cb?x=\\", "redirect_uri.backslash"),
    ("cursor://anysphere.cursor-mcp\\oauth/callback", "redirect_uri.backslash"),
    # fragment: any '#'
    ("https://example.com/cb#", "redirect_uri.fragment"),
    ("https://example.com/cb#x", "redirect_uri.fragment"),
    ("https://example.com/cb#@evil.com", "redirect_uri.fragment"),
    ("https://example.com#/cb", "redirect_uri.fragment"),
    ("warp://mcp/oauth2callback#x", "redirect_uri.fragment"),
    # encoded_separator: %2F %5C (any case), double-encoded, anywhere
    ("https://example.com/a%2fb", "redirect_uri.encoded_separator"),
    ("https://example.com/a%2Fb", "redirect_uri.encoded_separator"),
    ("https://example.com/a%5cb", "redirect_uri.encoded_separator"),
    ("https://example.com/a%5Cb", "redirect_uri.encoded_separator"),
    ("https://example.com/a%252fb", "redirect_uri.encoded_separator"),
    ("https://example.com/a%25252F", "redirect_uri.encoded_separator"),
    ("https://example.com/a%25%32%66", "redirect_uri.encoded_separator"),  # %25 + %32 + %66
    ("https://example.com%2f@evil.com", "redirect_uri.encoded_separator"),
    ("https://example.com/cb%2F%2Fevil.com", "redirect_uri.encoded_separator"),
    ("com.example.app:/a%2fb", "redirect_uri.encoded_separator"),
    # userinfo: '@' in the authority, raw or encoded
    ("https://user@example.com/cb", "redirect_uri.userinfo"),
    ("https://user:pass@example.com/cb", "redirect_uri.userinfo"),
    ("https://@example.com/cb", "redirect_uri.userinfo"),
    ("https://example.com%40evil.com/cb", "redirect_uri.userinfo"),
    ("https://example.com%2540evil.com/cb", "redirect_uri.userinfo"),
    ("cursor://x@anysphere.cursor-mcp/oauth/callback", "redirect_uri.userinfo"),
    # dot_segment: '.' or '..' raw or encoded, at any depth
    ("https://example.com/a/../b", "redirect_uri.dot_segment"),
    ("https://example.com/a/./b", "redirect_uri.dot_segment"),
    ("https://example.com/a/..", "redirect_uri.dot_segment"),
    ("https://example.com/..", "redirect_uri.dot_segment"),
    ("https://example.com/a/%2e%2e/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/%2E%2E/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/.%2E/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/%2e./b", "redirect_uri.dot_segment"),
    ("https://example.com/a/%2e/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/%252e%252e/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/..;/b", "redirect_uri.dot_segment"),  # servlet path parameter
    ("https://example.com/a/.;x=1/b", "redirect_uri.dot_segment"),
    ("https://example.com/a/%2e%2e%3b/b", "redirect_uri.dot_segment"),
    ("com.example.app:/cb/../x", "redirect_uri.dot_segment"),
    ("com.example.app:..", "redirect_uri.dot_segment"),
    # wildcard: a literal '*'
    ("https://example.com/*", "redirect_uri.wildcard"),
    ("https://*.example.com/cb", "redirect_uri.wildcard"),
    ("https://example.com:*/cb", "redirect_uri.wildcard"),
    ("https://example.com/cb?*", "redirect_uri.wildcard"),
    ("cursor://anysphere.cursor-mcp/oauth/*", "redirect_uri.wildcard"),
    # no_host: http(s) without a host
    ("https:", "redirect_uri.no_host"),
    ("https:/cb", "redirect_uri.no_host"),
    ("https:example.com/cb", "redirect_uri.no_host"),
    ("https://", "redirect_uri.no_host"),
    ("https:///cb", "redirect_uri.no_host"),
    ("https://:443/cb", "redirect_uri.no_host"),
    ("http://?x", "redirect_uri.no_host"),
    # insecure_http: http on a host that is not loopback
    ("http://example.com/cb", "redirect_uri.insecure_http"),
    ("HTTP://EXAMPLE.COM/cb", "redirect_uri.insecure_http"),
    ("http://127.0.0.2/cb", "redirect_uri.insecure_http"),
    ("http://localhost.example.com/cb", "redirect_uri.insecure_http"),
    ("http://127.0.0.1.example.com/cb", "redirect_uri.insecure_http"),
    ("http://[::ffff:127.0.0.1]/cb", "redirect_uri.insecure_http"),
    ("http://[::2]/cb", "redirect_uri.insecure_http"),
    ("http://0.0.0.0/cb", "redirect_uri.insecure_http"),
    # malformed: scheme syntax
    ("1http://example.com/", "redirect_uri.malformed"),
    ("ht_tp://example.com/", "redirect_uri.malformed"),
    (":example", "redirect_uri.malformed"),
    ("\uff48\uff54\uff54\uff50\uff53://example.com/", "redirect_uri.malformed"),
    # malformed: port
    ("https://example.com:abc/cb", "redirect_uri.malformed"),
    ("https://example.com:-1/cb", "redirect_uri.malformed"),
    ("https://example.com:0/cb", "redirect_uri.malformed"),
    ("https://example.com:65536/cb", "redirect_uri.malformed"),
    ("https://example.com:99999999999999999999/cb", "redirect_uri.malformed"),
    ("https://example.com:\uff11\uff12/cb", "redirect_uri.malformed"),  # fullwidth digits
    ("https://example.com:443:443/cb", "redirect_uri.malformed"),
    ("https://example.com: 443/cb", "redirect_uri.control_character"),
    # malformed: percent-encoding
    ("https://example.com/%", "redirect_uri.malformed"),
    ("https://example.com/%4", "redirect_uri.malformed"),
    ("https://example.com/%zz", "redirect_uri.malformed"),
    ("https://example.com/cb?x=%g0", "redirect_uri.malformed"),
    # malformed: characters outside RFC 3986 (non-ASCII only allowed in the host)
    ("https://example.com/caf\u00e9", "redirect_uri.malformed"),
    ("https://example.com/cb?q=\u00e9", "redirect_uri.malformed"),
    ("https://example.com/<script>", "redirect_uri.malformed"),
    ('https://example.com/"x"', "redirect_uri.malformed"),
    ("https://example.com/{x}", "redirect_uri.malformed"),
    ("https://example.com/a|b", "redirect_uri.malformed"),
    ("https://example.com/a^b", "redirect_uri.malformed"),
    ("https://example.com/`", "redirect_uri.malformed"),
    ("https://example.com/[x]", "redirect_uri.malformed"),
    ("cursor://anysph\u00e9re/cb", "redirect_uri.malformed"),
    ("cursor://anysphere%2Ecursor/cb", "redirect_uri.malformed"),
    ("cursor://[::1]/cb", "redirect_uri.malformed"),
    # malformed: host
    ("https://exa%6dple.com/cb", "redirect_uri.malformed"),  # percent-encoding in host
    ("https://a..b/cb", "redirect_uri.malformed"),
    ("https://.example.com/cb", "redirect_uri.malformed"),
    ("https://example.com../cb", "redirect_uri.malformed"),
    ("https://./cb", "redirect_uri.malformed"),
    ("https://exa_mple.com/cb", "redirect_uri.malformed"),  # STD3 rules
    ("https://-example.com/cb", "redirect_uri.malformed"),
    ("https://example-.com/cb", "redirect_uri.malformed"),
    ("https://ab--cd.example/cb", "redirect_uri.malformed"),
    ("https://xn--zz.example/cb", "redirect_uri.malformed"),  # invalid A-label
    ("https://" + "a" * 64 + ".com/cb", "redirect_uri.malformed"),  # label too long
    ("https://" + ("a" * 60 + ".") * 5 + "com/cb", "redirect_uri.malformed"),  # name too long
    ("https://exa!mple.com/cb", "redirect_uri.malformed"),
    ("https://good.example.com\uff0f.evil.com/cb", "redirect_uri.malformed"),  # fullwidth /
    ("https://good.example.com\uff20evil.com/cb", "redirect_uri.malformed"),  # fullwidth @
    ("https://good.example.com\uff1a443/cb", "redirect_uri.malformed"),  # fullwidth colon
    # malformed: IPv4 that is not canonical dotted-quad (WHATWG would still parse it)
    ("http://2130706433/cb", "redirect_uri.malformed"),
    ("http://0x7f.1/cb", "redirect_uri.malformed"),
    ("http://0x7F000001/cb", "redirect_uri.malformed"),
    ("http://127.1/cb", "redirect_uri.malformed"),
    ("http://127.0.1/cb", "redirect_uri.malformed"),
    ("http://0177.0.0.1/cb", "redirect_uri.malformed"),
    ("http://127.000.000.001/cb", "redirect_uri.malformed"),
    ("http://127.0.0.1.1/cb", "redirect_uri.malformed"),
    ("http://256.0.0.1/cb", "redirect_uri.malformed"),
    ("https://example.123/cb", "redirect_uri.malformed"),
    ("https://example.0x/cb", "redirect_uri.malformed"),
    ("http://127.0.0.1../cb", "redirect_uri.malformed"),
    # malformed: IPv6
    ("http://[::1/cb", "redirect_uri.malformed"),
    ("http://[::1]x/cb", "redirect_uri.malformed"),
    ("http://::1/cb", "redirect_uri.malformed"),
    ("http://[fe80::1%25eth0]/cb", "redirect_uri.malformed"),  # zone id
    ("http://[fe80::1%eth0]/cb", "redirect_uri.malformed"),
    ("http://[v1.x]/cb", "redirect_uri.malformed"),  # IPvFuture
    ("http://[127.0.0.1]/cb", "redirect_uri.malformed"),
    ("http://[::1::2]/cb", "redirect_uri.malformed"),
    ("http://[12345::1]/cb", "redirect_uri.malformed"),
    ("http://[]/cb", "redirect_uri.malformed"),
    ("http://ex]ample.com/cb", "redirect_uri.malformed"),
]


@pytest.mark.parametrize(("raw", "rule"), REFUSED, ids=[r[:60] for r, _ in REFUSED])
def test_refused_with_rule(raw: str, rule: str) -> None:
    refusal = refused(raw)
    assert refusal.rule == rule, refusal.description
    assert refusal.rule in RULES


ACCEPTED_NEAR_MISSES = [
    # Each is close to a refusal rule but must pass it.
    "https://example.com/" + "a" * 1980,  # exactly 2,000 characters
    "https://example.com/a.b/..c/c../.../%2e%2e%2e",  # not '.' or '..'
    "https://example.com/a%2Eb",  # encoded dot inside a segment
    "https://example.com/a/...;x/b",  # three dots are a name, even with a parameter
    "https://example.com/a/x;../b",  # '..' as a parameter is not a segment
    "https://example.com/cb?next=../x",  # dot segments only matter in the path
    "https://example.com/a@b",  # '@' in the path is not userinfo
    "https://example.com/cb?user=a@b",  # nor in the query
    "https://example.com/%2A",  # an encoded '*' is not a wildcard
    "https://example.com/cb?x=%23",  # an encoded '#' is not a fragment
    "https://example.com/%25",  # an encoded '%'
    "https://example.com/%252",  # '%2' after one decoding is not an escape
    "https://example.com/a;b=c,d!$&'()+",  # sub-delims
    "https://example.com:65535/cb",
    "https://example.com:1/cb",
    "http://[::1]/cb",
    "http://127.0.0.1/cb",
    "http://localhost/cb",
    "https://0.0.0.0/cb",
    "https://255.255.255.255/cb",
    "https://a.b-c.example/cb",
    "https://xn--bcher-kva.example/cb",
    "https://ex.ample.c0m/cb",  # last label is not a number
    "https://example.0xg/cb",  # not a hex number either
    "com.example.app:/oauth2redirect/example-provider",  # RFC 8252 §7.1 example
    "com.example.app://host/cb",
    "com.example.app:/cb?code=x",
]


@pytest.mark.parametrize("raw", ACCEPTED_NEAR_MISSES, ids=[r[:60] for r in ACCEPTED_NEAR_MISSES])
def test_near_misses_are_accepted(raw: str) -> None:
    ok(raw)


# --- order of checks ----------------------------------------------------------------------

ORDER = [
    # Several problems at once: the documented order decides which rule is reported.
    ("too long and control", "\n" * 2001, "redirect_uri.too_long"),
    ("control before relative", "/a b", "redirect_uri.control_character"),
    ("control before dangerous", "javascript:a\tb", "redirect_uri.control_character"),
    ("relative before fragment", "/cb#x", "redirect_uri.relative"),
    ("dangerous before fragment", "data:x#y", "redirect_uri.dangerous_scheme"),
    (
        "dangerous before encoded control",
        "javascript://x/%0aalert(1)",
        "redirect_uri.dangerous_scheme",
    ),
    ("dangerous before backslash", "javascript:a\\b", "redirect_uri.dangerous_scheme"),
    ("scheme syntax before backslash", "h_t:\\x", "redirect_uri.malformed"),
    ("backslash before fragment", "https://a.com\\b#c", "redirect_uri.backslash"),
    ("backslash before userinfo", "https://a.com\\@b.com/", "redirect_uri.backslash"),
    ("fragment before userinfo", "https://a@b.com/#x", "redirect_uri.fragment"),
    ("fragment before separator", "https://b.com/%2f#x", "redirect_uri.fragment"),
    ("separator before userinfo", "https://a.com%2f@b.com/", "redirect_uri.encoded_separator"),
    ("separator before encoded control", "https://a.com/%2f%00", "redirect_uri.encoded_separator"),
    ("encoded control before userinfo", "https://a@b.com/%00", "redirect_uri.control_character"),
    ("userinfo before dot segment", "https://a@b.com/../", "redirect_uri.userinfo"),
    ("dot segment before wildcard", "https://b.com/../*", "redirect_uri.dot_segment"),
    ("wildcard before malformed", "https://b.com:x/*", "redirect_uri.wildcard"),
    ("wildcard before insecure http", "http://b.com/*", "redirect_uri.wildcard"),
    ("no host before bad port", "https://:x/", "redirect_uri.no_host"),
    ("host before port", "https://a..b:x/", "redirect_uri.malformed"),
    ("malformed before insecure http", "http://example.com/%zz", "redirect_uri.malformed"),
    ("bad IPv4 before insecure http", "http://2130706433/", "redirect_uri.malformed"),
]


@pytest.mark.parametrize(("raw", "rule"), [o[1:] for o in ORDER], ids=[o[0] for o in ORDER])
def test_order_of_checks(raw: str, rule: str) -> None:
    assert refused(raw).rule == rule


def test_rules_table_lists_every_rule_constant_in_check_order() -> None:
    constants = {
        value
        for name, value in vars(uris).items()
        if name.isupper() and isinstance(value, str) and value.startswith("redirect_uri.")
    }
    assert constants == set(RULES)
    assert list(RULES)[:2] == ["redirect_uri.too_long", "redirect_uri.control_character"]
    assert all(rule.startswith("redirect_uri.") for rule in RULES)
    assert all(meaning and "\n" not in meaning for meaning in RULES.values())


def test_every_rule_but_loopback_denied_is_exercised_by_the_refusal_table() -> None:
    assert {rule for _, rule in REFUSED} == set(RULES) - {"redirect_uri.loopback_denied"}


# --- descriptions -------------------------------------------------------------------------


def test_description_names_the_problem_and_shows_the_uri_safely() -> None:
    refusal = refused("https://example.com/cb\r\nX-Injected: 1")
    assert "\r" not in refusal.description and "\n" not in refusal.description
    assert "U+000D" in refusal.description
    assert "https://example.com/cb" in refusal.description


def test_description_truncates_long_uris() -> None:
    refusal = refused("https://example.com/" + "a" * 3000)
    assert len(refusal.description) < 400
    assert "3,020 characters" in refusal.description


def test_fragment_description_cites_rfc_6749() -> None:
    assert "RFC 6749 §3.1.2" in refused("https://example.com/#x").description


# --- robustness and equivalences ---------------------------------------------------------

ASCII_HOSTS = [
    "example.com",
    "EXAMPLE.com",
    "a-b.example",
    "xn--bcher-kva.example",
    "ab--cd.example",
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    "-a.com",
    "a-.com",
    "1.example",
    "localhost",
]


@pytest.mark.parametrize("host", ASCII_HOSTS)
def test_ascii_host_fast_path_agrees_with_idna(host: str) -> None:
    try:
        expected: str | None = idna.encode(host, uts46=True, std3_rules=True).decode()
    except idna.IDNAError:
        expected = None
    parsed = parse_redirect_uri(f"https://{host}/cb")
    if expected is None:
        assert isinstance(parsed, URIRefusal)
        assert parsed.rule == "redirect_uri.malformed"
    else:
        assert isinstance(parsed, RedirectURI)
        assert parsed.host == expected


def test_never_raises_on_arbitrary_text() -> None:
    alphabet = "ab:/?#@%.*\\[]2fFeE5cC0x \t\n\u00e9\u3002\uff0f\u200b-_~!" + "https"
    rng = random.Random(20261124)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        for candidate in (text, "https://" + text, "cursor://" + text, "http://[" + text):
            result = parse_redirect_uri(candidate)
            assert isinstance(result, (RedirectURI, URIRefusal))
            if isinstance(result, URIRefusal):
                assert result.rule in RULES
            else:
                # Whatever is accepted re-parses to itself.
                again = parse_redirect_uri(result.normalized())
                assert isinstance(again, RedirectURI), (candidate, again)
                assert again.normalized() == result.normalized()


def test_wildcards_are_only_parsed_in_pattern_mode() -> None:
    parts = parse_parts("https://*.example.com:*/a/*?*", pattern=True)
    assert not isinstance(parts, URIRefusal)
    assert (parts.host, parts.host_wildcard, parts.any_port, parts.path, parts.query) == (
        "example.com",
        True,
        True,
        "/a/*",
        "*",
    )
    assert refused("https://*.example.com:*/a/*?*").rule == "redirect_uri.wildcard"


@pytest.mark.parametrize(
    "raw",
    [
        "https://example.com/cb?next=%2F%2Fevil.com",
        "http://localhost:3000/?r=https%3A%2F%2Fa.b%2Fc",
    ],
)
def test_encoded_separators_in_the_query_are_ordinary(raw: str) -> None:
    """A pattern without ``?*`` still refuses any query; with ``?*`` a raw '/' is allowed
    there anyway, so refusing its encoded form would only break real clients."""
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, RedirectURI)
    assert parsed.query is not None and "%2F" in parsed.query
