"""Published and classic redirect-URI bypasses against a realistic allow set.

Each attack must be refused.  Where a hygiene rule applies, the test pins WHICH rule refused
it (operators read these ids in audit logs); otherwise the URI parses but matches no pattern.
"""

from __future__ import annotations

import pytest

from gateway.policy.patterns import LoopbackMode, PatternSet, compile_pattern
from gateway.uri.parse import URIRefusal, parse_redirect_uri

ALLOW = PatternSet(
    [
        compile_pattern("https://good.example.com/oauth/*", "custom"),
        compile_pattern("https://*.good.example.com/cb", "custom"),
        compile_pattern("http://localhost/callback", "managed:claude-code"),
        compile_pattern("cursor://anysphere.cursor-mcp/oauth/callback", "managed:cursor"),
    ],
    LoopbackMode.ANY_PORT,
)

NO_MATCH = "no_match"


def verdict(raw: str) -> str:
    """The hygiene rule that refused ``raw``, ``no_match``, or ``allowed:<label>``."""
    parsed = parse_redirect_uri(raw)
    if isinstance(parsed, URIRefusal):
        return parsed.rule
    found = ALLOW.match(parsed)
    return NO_MATCH if found is None else f"allowed:{found.label}"


# --- the allow set works for the real thing -------------------------------------------------

LEGITIMATE = [
    ("exact path under the wildcard", "https://good.example.com/oauth/cb", "custom"),
    ("case-insensitive scheme and host", "HTTPS://GOOD.EXAMPLE.COM/oauth/cb", "custom"),
    ("default port written out", "https://good.example.com:443/oauth/cb", "custom"),
    ("empty port", "https://good.example.com:/oauth/cb", "custom"),
    ("trailing dot on the host", "https://good.example.com./oauth/cb", "custom"),
    ("one-label host wildcard", "https://eu.good.example.com/cb", "custom"),
    ("loopback any port", "http://localhost:53682/callback", "managed:claude-code"),
    ("loopback upper case", "HTTP://LOCALHOST:1234/callback", "managed:claude-code"),
    ("cursor scheme", "cursor://anysphere.cursor-mcp/oauth/callback", "managed:cursor"),
    ("cursor scheme upper case", "CURSOR://anysphere.cursor-mcp/oauth/callback", "managed:cursor"),
    # Decision: UTS #46 maps fullwidth letters to ASCII, and browsers (WHATWG URL) do the same,
    # so a fullwidth spelling of the allowed host IS the allowed host and may match.
    (
        "fullwidth spelling of the same host",
        "https://\uff47\uff4f\uff4f\uff44.example.com/oauth/cb",
        "custom",
    ),
    ("ideographic full stops, same host", "https://good\u3002example\u3002com/oauth/cb", "custom"),
    (
        "fullwidth localhost is localhost",
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:1234/callback",
        "managed:claude-code",
    ),
]


@pytest.mark.parametrize(
    ("raw", "label"), [c[1:] for c in LEGITIMATE], ids=[c[0] for c in LEGITIMATE]
)
def test_legitimate_uris_are_allowed(raw: str, label: str) -> None:
    assert verdict(raw) == f"allowed:{label}"


# --- attacks ----------------------------------------------------------------------------------

ATTACKS = [
    # fnmatch-style '*' that crosses '/' or '?'
    (
        "dot segments escape the wildcard",
        "https://good.example.com/oauth/x/../../evil",
        "redirect_uri.dot_segment",
    ),
    ("wildcard spanning two segments", "https://good.example.com/oauth/a/b", NO_MATCH),
    ("trailing slash adds a segment", "https://good.example.com/oauth/cb/", NO_MATCH),
    ("wildcard must not be empty", "https://good.example.com/oauth/", NO_MATCH),
    (
        "allowed URI hidden in another host's query",
        "https://evil.example/x?https://good.example.com/oauth/cb",
        NO_MATCH,
    ),
    ("allowed host hidden in a query", "https://evil.com?good.example.com/oauth/cb", NO_MATCH),
    (
        "query on a pattern without '?*'",
        "https://good.example.com/oauth/cb?next=https://evil.com",
        NO_MATCH,
    ),
    ("query instead of a segment", "https://good.example.com/oauth?cb", NO_MATCH),
    ("path is case-sensitive", "https://good.example.com/OAUTH/cb", NO_MATCH),
    # userinfo
    (
        "userinfo with the good host",
        "https://good.example.com@evil.com/oauth/cb",
        "redirect_uri.userinfo",
    ),
    (
        "encoded '@' in the host",
        "https://good.example.com%40evil.com/oauth/cb",
        "redirect_uri.userinfo",
    ),
    (
        "double-encoded '@' in the host",
        "https://good.example.com%2540evil.com/oauth/cb",
        "redirect_uri.userinfo",
    ),
    (
        "port-looking userinfo",
        "https://good.example.com:443@evil.com/oauth/cb",
        "redirect_uri.userinfo",
    ),
    (
        "userinfo on a private-use scheme",
        "cursor://evil@anysphere.cursor-mcp/oauth/callback",
        "redirect_uri.userinfo",
    ),
    # backslash and encoded separators
    ("backslash before '@'", "https://good.example.com\\@evil.com/", "redirect_uri.backslash"),
    ("backslashes as slashes", "https:\\\\evil.com\\oauth\\cb", "redirect_uri.backslash"),
    ("mixed slash and backslash", "https:/\\evil.com/oauth/cb", "redirect_uri.backslash"),
    (
        "encoded slash before '@'",
        "https://good.example.com%2f@evil.com",
        "redirect_uri.encoded_separator",
    ),
    (
        "encoded slash after dots",
        "https://good.example.com/oauth/..%2fevil",
        "redirect_uri.encoded_separator",
    ),
    (
        "encoded backslash",
        "https://good.example.com/oauth/x%5c..%5cevil",
        "redirect_uri.encoded_separator",
    ),
    (
        "double-encoded slash",
        "https://good.example.com/oauth/a%252fb",
        "redirect_uri.encoded_separator",
    ),
    # dot segments, raw and encoded
    (
        "raw '..' after the wildcard",
        "https://good.example.com/oauth/..",
        "redirect_uri.dot_segment",
    ),
    (
        "encoded '..'",
        "https://good.example.com/oauth/%2e%2e/%2e%2e/evil",
        "redirect_uri.dot_segment",
    ),
    ("mixed-encoded '..'", "https://good.example.com/oauth/.%2E/evil", "redirect_uri.dot_segment"),
    (
        "double-encoded '..'",
        "https://good.example.com/oauth/%252e%252e/evil",
        "redirect_uri.dot_segment",
    ),
    ("encoded '.'", "https://good.example.com/oauth/%2e", "redirect_uri.dot_segment"),
    (
        "servlet '..;' after the wildcard",
        "https://good.example.com/oauth/..;",
        "redirect_uri.dot_segment",
    ),
    ("dots on loopback", "http://localhost/callback/../../evil", "redirect_uri.dot_segment"),
    # host confusion
    ("allowed host as a prefix", "https://good.example.com.evil.com/oauth/cb", NO_MATCH),
    ("allowed host as a suffix", "https://evilgood.example.com/oauth/cb", NO_MATCH),
    ("two labels under a one-label wildcard", "https://a.b.good.example.com/cb", NO_MATCH),
    ("wildcard does not cover the apex", "https://good.example.com/cb", NO_MATCH),
    ("wildcard label under a sibling", "https://a.bad.example.com/cb", NO_MATCH),
    ("Cyrillic homoglyphs", "https://g\u043e\u043ed.example.com/oauth/cb", NO_MATCH),
    ("punycode of the homoglyphs", "https://xn--gd-fmca.example.com/oauth/cb", NO_MATCH),
    (
        "fullwidth host that maps elsewhere",
        "https://\uff47\uff4f\uff4f\uff44.example.com.evil.com/oauth/cb",
        NO_MATCH,
    ),
    (
        "ideographic full stops to another host",
        "https://good\u3002example\u3002com\u3002evil\u3002com/oauth/cb",
        NO_MATCH,
    ),
    (
        "fullwidth solidus in the host",
        "https://good.example.com\uff0f.evil.com/oauth/cb",
        "redirect_uri.malformed",
    ),
    (
        "fullwidth commercial at in the host",
        "https://good.example.com\uff20evil.com/oauth/cb",
        "redirect_uri.malformed",
    ),
    (
        "fullwidth reverse solidus in the host",
        "https://good.example.com\uff3c.evil.com/oauth/cb",
        "redirect_uri.malformed",
    ),
    (
        "encoded ideographic full stop",
        "https://good%E3%80%82example.com/oauth/cb",
        "redirect_uri.malformed",
    ),
    (
        "zero-width space in the host",
        "https://good.example.com\u200b.evil.com/oauth/cb",
        "redirect_uri.control_character",
    ),
    (
        "soft hyphen UTS #46 would delete",
        "https://go\u00adod.example.com/oauth/cb",
        "redirect_uri.control_character",
    ),
    (
        "right-to-left override",
        "https://good.example.com/oauth/cb\u202e",
        "redirect_uri.control_character",
    ),
    (
        "encoded NUL truncating the host",
        "https://good.example.com%00.evil.com/oauth/cb",
        "redirect_uri.control_character",
    ),
    # transport downgrade and loopback confusion
    (
        "http downgrade of an https pattern",
        "http://good.example.com/oauth/cb",
        "redirect_uri.insecure_http",
    ),
    ("http on a public host", "http://evil.com/callback", "redirect_uri.insecure_http"),
    (
        "loopback IP as a subdomain",
        "http://127.0.0.1.evil.com/callback",
        "redirect_uri.insecure_http",
    ),
    (
        "localhost as a subdomain",
        "http://localhost.evil.com/callback",
        "redirect_uri.insecure_http",
    ),
    (
        "IPv4-mapped IPv6 loopback",
        "http://[::ffff:127.0.0.1]/callback",
        "redirect_uri.insecure_http",
    ),
    ("unspecified address", "http://0.0.0.0/callback", "redirect_uri.insecure_http"),
    ("decimal IPv4", "http://2130706433/callback", "redirect_uri.malformed"),
    ("hex IPv4", "http://0x7f000001/callback", "redirect_uri.malformed"),
    ("hex and short IPv4", "http://0x7f.1/callback", "redirect_uri.malformed"),
    ("short IPv4", "http://127.1/callback", "redirect_uri.malformed"),
    ("octal IPv4", "http://0177.0.0.1/callback", "redirect_uri.malformed"),
    ("encoded dot in localhost", "http://localhost%2eevil.com/callback", "redirect_uri.malformed"),
    ("IPv6 zone id", "http://[::1%25eth0]/callback", "redirect_uri.malformed"),
    ("127.0.0.1 is not localhost", "http://127.0.0.1:8080/callback", NO_MATCH),
    ("[::1] is not localhost", "http://[::1]:8080/callback", NO_MATCH),
    ("https loopback is another scheme", "https://localhost:8080/callback", NO_MATCH),
    # ports
    ("other port on a non-loopback host", "https://good.example.com:8443/oauth/cb", NO_MATCH),
    ("port 80 on https", "https://good.example.com:80/oauth/cb", NO_MATCH),
    ("port out of range", "http://localhost:65536/callback", "redirect_uri.malformed"),
    ("port zero", "https://good.example.com:0/oauth/cb", "redirect_uri.malformed"),
    ("non-numeric port", "https://good.example.com:evil.com/oauth/cb", "redirect_uri.malformed"),
    # schemes
    (
        "javascript with an encoded newline",
        "javascript://good.example.com/%0aalert(1)",
        "redirect_uri.dangerous_scheme",
    ),
    (
        "JavaScript in mixed case",
        "JaVaScRiPt:alert(document.domain)",
        "redirect_uri.dangerous_scheme",
    ),
    (
        "data URI",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "redirect_uri.dangerous_scheme",
    ),
    ("vbscript", "vbscript:msgbox(1)", "redirect_uri.dangerous_scheme"),
    ("file", "file:///etc/passwd", "redirect_uri.dangerous_scheme"),
    ("blob", "blob:https://good.example.com/uuid", "redirect_uri.dangerous_scheme"),
    ("about", "about:blank", "redirect_uri.dangerous_scheme"),
    ("private-use scheme without '//'", "cursor:/anysphere.cursor-mcp/oauth/callback", NO_MATCH),
    (
        "private-use scheme, other authority",
        "cursor://anysphere.cursor-mcp.evil/oauth/callback",
        NO_MATCH,
    ),
    (
        "private-use scheme, extra segment",
        "cursor://anysphere.cursor-mcp/oauth/callback/x",
        NO_MATCH,
    ),
    ("unlisted private-use scheme", "warp://mcp/oauth2callback", NO_MATCH),
    ("protocol-relative", "//evil.com/oauth/cb", "redirect_uri.relative"),
    ("relative path", "/oauth/cb", "redirect_uri.relative"),
    # control characters and whitespace
    ("NUL byte", "https://good.example.com/oauth/cb\x00", "redirect_uri.control_character"),
    ("encoded NUL", "https://good.example.com/oauth/cb%00", "redirect_uri.control_character"),
    (
        "CRLF header injection",
        "https://good.example.com/oauth/cb\r\nSet-Cookie: x=1",
        "redirect_uri.control_character",
    ),
    (
        "encoded CRLF",
        "https://good.example.com/oauth/cb%0d%0aSet-Cookie:x=1",
        "redirect_uri.control_character",
    ),
    ("tab", "https://good.example.com/oauth/c\tb", "redirect_uri.control_character"),
    ("trailing space", "https://good.example.com/oauth/cb ", "redirect_uri.control_character"),
    ("leading space", " https://good.example.com/oauth/cb", "redirect_uri.control_character"),
    ("trailing newline", "https://good.example.com/oauth/cb\n", "redirect_uri.control_character"),
    ("no-break space", "https://good.example.com/oauth/cb\u00a0", "redirect_uri.control_character"),
    (
        "ideographic space",
        "https://good.example.com/oauth/cb\u3000",
        "redirect_uri.control_character",
    ),
    # size, wildcard, fragment
    ("very long URI", "https://good.example.com/oauth/" + "a" * 2000, "redirect_uri.too_long"),
    (
        "very long URI with a fragment",
        "https://good.example.com/oauth/cb#" + "@" * 5000,
        "redirect_uri.too_long",
    ),
    ("literal '*' in the path", "https://good.example.com/oauth/*", "redirect_uri.wildcard"),
    ("literal '*' host", "https://*.good.example.com/cb", "redirect_uri.wildcard"),
    ("fragment with '@'", "https://good.example.com/oauth/cb#@evil.com", "redirect_uri.fragment"),
    ("empty fragment", "https://good.example.com/oauth/cb#", "redirect_uri.fragment"),
    (
        "allowed URI in a fragment",
        "https://evil.com#good.example.com/oauth/cb",
        "redirect_uri.fragment",
    ),
    ("non-ASCII path", "https://good.example.com/oauth/c\u0430llback", "redirect_uri.malformed"),
]


@pytest.mark.parametrize(("raw", "expected"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_is_refused(raw: str, expected: str) -> None:
    result = verdict(raw)
    assert not result.startswith("allowed:"), f"{raw!r} was allowed ({result})"
    assert result == expected


def test_attack_corpus_is_large_and_covers_every_hygiene_rule() -> None:
    assert len(ATTACKS) >= 35
    rules = {expected for _, _, expected in ATTACKS} - {NO_MATCH}
    assert rules >= {
        "redirect_uri.too_long",
        "redirect_uri.control_character",
        "redirect_uri.relative",
        "redirect_uri.dangerous_scheme",
        "redirect_uri.backslash",
        "redirect_uri.fragment",
        "redirect_uri.encoded_separator",
        "redirect_uri.userinfo",
        "redirect_uri.dot_segment",
        "redirect_uri.wildcard",
        "redirect_uri.malformed",
        "redirect_uri.insecure_http",
    }


@pytest.mark.parametrize(
    "raw",
    ["http://localhost:53682/callback", "http://localhost/callback"],
)
def test_loopback_deny_refuses_even_listed_loopback(raw: str) -> None:
    parsed = parse_redirect_uri(raw)
    assert not isinstance(parsed, URIRefusal)
    denying = PatternSet(list(ALLOW), LoopbackMode.DENY)
    refusal = denying.refusal(parsed)
    assert refusal is not None and refusal.rule == "redirect_uri.loopback_denied"
    assert denying.match(parsed) is None


def test_exact_loopback_mode_refuses_other_ports() -> None:
    parsed = parse_redirect_uri("http://localhost:53682/callback")
    assert not isinstance(parsed, URIRefusal)
    assert PatternSet(list(ALLOW), LoopbackMode.EXACT).match(parsed) is None
