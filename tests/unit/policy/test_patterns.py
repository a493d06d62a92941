"""The redirect URI pattern language and its index (gateway.policy.patterns)."""

from __future__ import annotations

import pickle

import pytest

from gateway.policy.patterns import (
    LoopbackMode,
    Pattern,
    PatternError,
    PatternMatch,
    PatternSet,
    compile_pattern,
    glob_match,
    loopback_refusal,
)
from gateway.uri.parse import RedirectURI, URIRefusal, parse_redirect_uri


def uri(raw: str) -> RedirectURI:
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, RedirectURI), parsed
    return parsed


def matches(pattern: str, raw: str, loopback: LoopbackMode = LoopbackMode.ANY_PORT) -> bool:
    """Check both the single pattern and a one-pattern set, which must agree."""
    compiled = compile_pattern(pattern, "test")
    single = compiled.matches(uri(raw), loopback)
    via_set = PatternSet([compiled], loopback).match(uri(raw)) is not None
    assert single == via_set, (pattern, raw)
    return single


# --- Glean's example table -----------------------------------------------------------------

GLEAN = [
    ("https://my.example.com/oauth/callback", True),  # exact match
    ("https://my.example.com/oauth/*", True),  # wildcard matches "callback"
    ("https://my.example.com/*/callback", True),  # wildcard matches "oauth"
    ("https://my.example.com/*", False),  # cannot match across '/' ("oauth/callback")
]


@pytest.mark.parametrize(("pattern", "expected"), GLEAN, ids=[p for p, _ in GLEAN])
def test_glean_example_table(pattern: str, expected: bool) -> None:
    assert matches(pattern, "https://my.example.com/oauth/callback") is expected


# --- paths ---------------------------------------------------------------------------------

PATHS = [
    # pattern, uri, matches?
    ("https://a.example/cb", "https://a.example/cb", True),
    ("https://a.example/cb", "https://a.example/cb/", False),
    ("https://a.example/cb", "https://a.example/CB", False),  # paths are case-sensitive
    ("https://a.example/cb", "https://a.example/cb2", False),
    ("https://a.example", "https://a.example/", True),  # empty path is "/"
    ("https://a.example/", "https://a.example", True),
    ("https://a.example/", "https://a.example/x", False),
    ("https://a.example/%7euser/cb", "https://a.example/~user/cb", True),  # RFC 3986 §6.2.2.2
    ("https://a.example/~user/cb", "https://a.example/%7Euser/cb", True),
    ("https://a.example/a%3db", "https://a.example/a%3Db", True),  # hex case
    ("https://a.example/a%3Db", "https://a.example/a=b", False),  # '=' is reserved
    ("https://a.example/oauth/*", "https://a.example/oauth/x", True),
    ("https://a.example/oauth/*", "https://a.example/oauth/", False),  # '*' is one or more
    ("https://a.example/oauth/*", "https://a.example/oauth", False),
    ("https://a.example/oauth/*", "https://a.example/oauth/a/b", False),
    ("https://a.example/oauth/*", "https://a.example/oauth/x?y", False),  # no '?' crossing
    ("https://a.example/*/cb", "https://a.example//cb", False),
    ("https://a.example/*/*/cb", "https://a.example/a/b/cb", True),
    ("https://a.example/cb-*", "https://a.example/cb-1", True),
    ("https://a.example/cb-*", "https://a.example/cb-", False),
    ("https://a.example/cb-*", "https://a.example/cb", False),
    ("https://a.example/*-cb", "https://a.example/x-cb", True),
    ("https://a.example/a*b*c", "https://a.example/aXbYc", True),
    ("https://a.example/a*b*c", "https://a.example/abc", False),
    ("https://a.example/a*b*c", "https://a.example/aXbc", False),
    ("https://a.example/a*b*c", "https://a.example/abbbc", True),
    ("https://a.example/a*a", "https://a.example/aa", False),
    ("https://a.example/a*a", "https://a.example/aba", True),
    (
        "https://a.example/api/mcp/*/oauth/callback",
        "https://a.example/api/mcp/s1/oauth/callback",
        True,
    ),
    (
        "https://a.example/api/mcp/*/oauth/callback",
        "https://a.example/api/mcp/a/b/oauth/callback",
        False,
    ),
]


@pytest.mark.parametrize(
    ("pattern", "raw", "expected"), PATHS, ids=[f"{p} vs {u}" for p, u, _ in PATHS]
)
def test_path_matching(pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw) is expected


@pytest.mark.parametrize(
    ("pieces", "text", "expected"),
    [
        (("x",), "x", True),
        (("x",), "xx", False),
        (("", ""), "a", True),
        (("", ""), "", False),
        (("a", ""), "ab", True),
        (("a", ""), "a", False),
        (("", "b"), "ab", True),
        (("a", "b", "c"), "a1b2c", True),
        (("a", "b", "c"), "ab2c", False),
        (("a", "b", "c"), "a1bc", False),
        (("a", "b", "c"), "a1bb2c", True),
        (("", "b", ""), "bbb", True),
        (("", "b", ""), "bb", False),
    ],
)
def test_glob_match_is_one_or_more(pieces: tuple[str, ...], text: str, expected: bool) -> None:
    assert glob_match(pieces, text) is expected


# --- hosts ---------------------------------------------------------------------------------

HOSTS = [
    ("https://a.example/cb", "https://A.EXAMPLE/cb", True),
    ("https://a.example/cb", "https://a.example./cb", True),
    ("https://A.Example./cb", "https://a.example/cb", True),
    ("https://bücher.example/cb", "https://xn--bcher-kva.example/cb", True),
    ("https://xn--bcher-kva.example/cb", "https://BÜCHER.example/cb", True),
    ("https://a.example/cb", "https://b.example/cb", False),
    ("https://a.example/cb", "https://x.a.example/cb", False),
    ("https://*.example.com/cb", "https://a.example.com/cb", True),
    ("https://*.example.com/cb", "https://xn--bcher-kva.example.com/cb", True),
    ("https://*.example.com/cb", "https://a.b.example.com/cb", False),
    ("https://*.example.com/cb", "https://example.com/cb", False),
    ("https://*.example.com/cb", "https://aexample.com/cb", False),
    ("https://*.example.com/cb", "https://a.example.com.evil.com/cb", False),
    ("https://*.example.com/cb", "https://a.example.org/cb", False),
    ("https://*.example.com/cb", "https://a.example.com/other", False),
    ("https://*.Bücher.example/cb", "https://a.xn--bcher-kva.example/cb", True),
    ("https://*.example.com/cb", "https://a.example.com:8443/cb", False),
]


@pytest.mark.parametrize(
    ("pattern", "raw", "expected"), HOSTS, ids=[f"{p} vs {u}" for p, u, _ in HOSTS]
)
def test_host_matching(pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw) is expected


# --- ports ---------------------------------------------------------------------------------

PORTS = [
    ("https://a.example/cb", "https://a.example:443/cb", True),  # default port
    ("https://a.example:443/cb", "https://a.example/cb", True),
    ("https://a.example/cb", "https://a.example:8443/cb", False),
    ("https://a.example:8443/cb", "https://a.example:8443/cb", True),
    ("https://a.example:8443/cb", "https://a.example:8444/cb", False),
    ("https://a.example:8443/cb", "https://a.example/cb", False),
    ("https://a.example:*/cb", "https://a.example:8443/cb", True),
    ("https://a.example:*/cb", "https://a.example/cb", True),
    ("https://*.example.com:*/cb", "https://x.example.com:1/cb", True),
    ("https://a.example:80/cb", "https://a.example/cb", False),  # 80 is not https's default
]


@pytest.mark.parametrize(
    ("pattern", "raw", "expected"), PORTS, ids=[f"{p} vs {u}" for p, u, _ in PORTS]
)
def test_port_matching(pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw) is expected


# --- queries -------------------------------------------------------------------------------

QUERIES = [
    ("https://a.example/cb", "https://a.example/cb", True),
    ("https://a.example/cb", "https://a.example/cb?x=1", False),
    ("https://a.example/cb", "https://a.example/cb?", False),  # a bare '?' is a query
    ("https://a.example/cb?*", "https://a.example/cb", True),
    ("https://a.example/cb?*", "https://a.example/cb?", True),
    ("https://a.example/cb?*", "https://a.example/cb?x=1&y=2", True),
    ("https://a.example/cb?x=1", "https://a.example/cb?x=1", True),
    ("https://a.example/cb?x=1", "https://a.example/cb?x=2", False),
    ("https://a.example/cb?x=1", "https://a.example/cb?x=1&y=2", False),
    ("https://a.example/cb?x=1", "https://a.example/cb", False),
    ("https://a.example/cb?x=1&y=2", "https://a.example/cb?y=2&x=1", False),  # order matters
    ("https://a.example/cb?x=%7e", "https://a.example/cb?x=~", True),
    ("https://a.example/cb?", "https://a.example/cb?", True),
    ("https://a.example/cb?", "https://a.example/cb", False),
    ("http://localhost:3000/?*", "http://localhost:51000/?code=x", True),  # Continue
]


@pytest.mark.parametrize(
    ("pattern", "raw", "expected"), QUERIES, ids=[f"{p} vs {u}" for p, u, _ in QUERIES]
)
def test_query_matching(pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw) is expected


# --- loopback ------------------------------------------------------------------------------

ANY, EXACT, DENY = LoopbackMode.ANY_PORT, LoopbackMode.EXACT, LoopbackMode.DENY
LOOPBACK = [
    # mode, pattern, uri, matches?
    (ANY, "http://localhost/callback", "http://localhost:54321/callback", True),
    (ANY, "http://localhost/callback", "http://localhost/callback", True),
    (ANY, "http://localhost:8787/callback", "http://localhost:9999/callback", True),
    (ANY, "http://127.0.0.1/cb", "http://127.0.0.1:1456/cb", True),
    (ANY, "http://[::1]/cb", "http://[0:0:0:0:0:0:0:1]:4000/cb", True),
    (ANY, "http://localhost/cb", "http://127.0.0.1:4000/cb", False),  # distinct hosts
    (ANY, "http://127.0.0.1/cb", "http://localhost:4000/cb", False),
    (ANY, "http://127.0.0.1/cb", "http://[::1]:4000/cb", False),
    (ANY, "http://localhost/cb", "https://localhost:4000/cb", False),  # scheme still exact
    (ANY, "http://localhost/cb", "http://localhost:4000/cb/x", False),  # path still exact
    (ANY, "http://localhost/cb", "http://localhost:4000/cb?x", False),  # query still exact
    (ANY, "https://a.example/cb", "https://a.example:8443/cb", False),  # not loopback
    (EXACT, "http://localhost/callback", "http://localhost:54321/callback", False),
    (EXACT, "http://localhost/callback", "http://localhost/callback", True),
    (EXACT, "http://localhost:8787/callback", "http://localhost:8787/callback", True),
    (EXACT, "http://localhost:8787/callback", "http://localhost:8788/callback", False),
    (EXACT, "http://localhost:*/callback", "http://localhost:8788/callback", True),
    (EXACT, "http://127.0.0.1:*/cb", "http://127.0.0.1/cb", True),
    (DENY, "http://localhost/callback", "http://localhost/callback", False),
    (DENY, "http://localhost:*/callback", "http://localhost:1/callback", False),
    (DENY, "http://[::1]/cb", "http://[::1]/cb", False),
    (DENY, "https://a.example/cb", "https://a.example/cb", True),  # only loopback is denied
]


@pytest.mark.parametrize(
    ("mode", "pattern", "raw", "expected"),
    LOOPBACK,
    ids=[f"{m.value}: {p} vs {u}" for m, p, u, _ in LOOPBACK],
)
def test_loopback_modes(mode: LoopbackMode, pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw, mode) is expected


@pytest.mark.parametrize(
    ("raw", "mode", "denied"),
    [
        ("http://localhost:4000/cb", DENY, True),
        ("http://127.0.0.1/cb", DENY, True),
        ("http://[::1]/cb", DENY, True),
        ("https://localhost/cb", DENY, True),
        ("https://a.example/cb", DENY, False),
        ("http://localhost:4000/cb", ANY, False),
        ("http://localhost:4000/cb", EXACT, False),
        ("myapp://localhost/cb", DENY, False),  # private-use authority is not a host
    ],
)
def test_loopback_refusal(raw: str, mode: LoopbackMode, denied: bool) -> None:
    refusal = loopback_refusal(uri(raw), mode)
    assert PatternSet([], mode).refusal(uri(raw)) == refusal
    if denied:
        assert isinstance(refusal, URIRefusal)
        assert refusal.rule == "redirect_uri.loopback_denied"
        assert "loopback" in refusal.description
    else:
        assert refusal is None


# --- private-use schemes -------------------------------------------------------------------

OPAQUE = [
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        True,
    ),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "CURSOR://AnySphere.cursor-mcp/oauth/callback",
        True,
    ),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor:/anysphere.cursor-mcp/oauth/callback",
        False,
    ),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback/",
        False,
    ),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/Callback",
        False,
    ),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback?x",
        False,
    ),
    ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor://evil/oauth/callback", False),
    (
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://anysphere.cursor-mcp/oauth/callback",
        False,
    ),
    ("warp://mcp/oauth2callback", "warp://mcp/oauth2callback", True),
    ("warp://mcp/oauth2callback", "warp://mcp/oauth2callback2", False),
    ("warp://mcp/oauth2callback", "warpx://mcp/oauth2callback", False),
    ("com.example.app:/cb", "com.example.app:/cb", True),
    ("com.example.app:/cb", "com.example.app:cb", False),
    ("com.example.app:/cb", "com.example.app:///cb", False),
    ("com.example.app:/*", "com.example.app:/x", True),
    ("com.example.app:/*", "com.example.app:/x/y", False),
    ("com.example.app:/*", "com.example.app://x", False),
    ("com.example.app:/cb?*", "com.example.app:/cb?code=1", True),
    ("cursor://*/oauth/callback", "cursor://anything-here/oauth/callback", True),
    ("cursor://*/oauth/callback", "cursor:///oauth/callback", False),  # '*' is one or more
    ("cursor://*/oauth/callback", "cursor:/oauth/callback", False),
    ("cursor://anysphere.*/cb", "cursor://anysphere.x:1/cb", True),
    ("myapp://host:99/cb", "myapp://host:99/cb", True),
    ("myapp://host:99/cb", "myapp://host/cb", False),
]


@pytest.mark.parametrize(
    ("pattern", "raw", "expected"), OPAQUE, ids=[f"{p} vs {u}" for p, u, _ in OPAQUE]
)
def test_private_use_schemes(pattern: str, raw: str, expected: bool) -> None:
    assert matches(pattern, raw) is expected


def test_private_use_scheme_needs_a_pattern() -> None:
    allowed = PatternSet([compile_pattern("https://good.example/cb", "custom")])
    assert allowed.match(uri("cursor://anysphere.cursor-mcp/oauth/callback")) is None


# --- load errors ---------------------------------------------------------------------------

LOAD_ERRORS = [
    # pattern, a phrase the message must contain
    ("http://example.com/cb", "redirect_uri.insecure_http"),
    ("http://*.example.com/cb", "redirect_uri.insecure_http"),
    ("javascript:*", "redirect_uri.dangerous_scheme"),
    ("data:*", "redirect_uri.dangerous_scheme"),
    ("https://example.com/cb#x", "redirect_uri.fragment"),
    ("https://example.com/cb#*", "redirect_uri.fragment"),
    ("https://user@example.com/cb", "redirect_uri.userinfo"),
    ("https://example.com/a\\b", "redirect_uri.backslash"),
    ("https://example.com/%2f/*", "redirect_uri.encoded_separator"),
    ("https://example.com/../*", "redirect_uri.dot_segment"),
    ("https://example.com/ cb", "redirect_uri.control_character"),
    ("/cb", "redirect_uri.relative"),
    ("https:///cb", "redirect_uri.no_host"),
    ("https://example.com/" + "a" * 2000, "redirect_uri.too_long"),
    ("https://example.com/**", "'**' has no special meaning"),
    ("https://**.example.com/cb", "'**' has no special meaning"),
    ("https://*/cb", "bare '*' host"),
    ("http://*/cb", "bare '*' host"),
    ("https://*.com/cb", "at least two labels"),
    ("https://*.localhost/cb", "at least two labels"),
    ("https://a*.example.com/cb", "whole leftmost label"),
    ("https://a.*.example.com/cb", "whole leftmost label"),
    ("https://example.*/cb", "whole leftmost label"),
    ("https://*.*.example.com/cb", "whole leftmost label"),
    ("https://*.127.0.0.1/cb", "IP address"),
    ("https://*.[::1]/cb", "outside an IPv6 address"),
    ("https://example.com:8*/cb", "only ':*'"),
    ("https://example.com/cb?x=*", "'?*' for any query"),
    ("https://example.com/cb?*x", "'?*' for any query"),
    ("*://example.com/cb", "cannot stand for a scheme"),
    ("http*://example.com/cb", "cannot stand for a scheme"),
    ("https://exa mple.com/*", "redirect_uri.control_character"),
    ("https://example.com:99999/cb", "outside 1-65535"),
    ("https://2130706433/cb", "IPv4"),
    ("", "redirect_uri.relative"),
]


@pytest.mark.parametrize(("pattern", "phrase"), LOAD_ERRORS, ids=[p[:60] for p, _ in LOAD_ERRORS])
def test_pattern_load_errors(pattern: str, phrase: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern, "custom")
    message = str(caught.value)
    assert phrase in message
    assert message.startswith("redirect URI pattern ")
    assert caught.value.source == pattern


def test_hygiene_errors_say_the_pattern_could_never_match() -> None:
    with pytest.raises(PatternError, match="could never match") as caught:
        compile_pattern("http://example.com/cb", "custom")
    assert caught.value.rule == "redirect_uri.insecure_http"


def test_pattern_error_survives_pickling() -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern("https://*/cb", "custom")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (str(copy), copy.source, copy.rule) == (
        str(caught.value),
        caught.value.source,
        caught.value.rule,
    )


def test_pattern_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="pattern"):
        compile_pattern("https://*/cb", "custom")


# --- compiled form -------------------------------------------------------------------------

COMPILED = [
    ("HTTPS://My.Example.COM:443/oauth/callback", "https://my.example.com/oauth/callback"),
    ("https://*.Bücher.example:*/a/*?*", "https://*.xn--bcher-kva.example:*/a/*?*"),
    ("http://localhost:8787/callback", "http://localhost:8787/callback"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com/%7e", "https://example.com/~"),
    (
        "CURSOR://AnySphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ),
    ("com.example.app:/cb", "com.example.app:/cb"),
]


@pytest.mark.parametrize(("source", "normalized"), COMPILED, ids=[s for s, _ in COMPILED])
def test_compiled_pattern_normalized_form(source: str, normalized: str) -> None:
    pattern = compile_pattern(source, "custom")
    assert isinstance(pattern, Pattern)
    assert pattern.normalized == normalized
    assert pattern.source == source
    assert pattern.label == "custom"


def test_loopback_pattern_is_flagged() -> None:
    assert compile_pattern("http://localhost/cb", "x").is_loopback
    assert compile_pattern("http://[::1]/cb", "x").is_loopback
    assert not compile_pattern("https://a.example/cb", "x").is_loopback


# --- the set: order, labels, index --------------------------------------------------------


def test_first_match_in_insertion_order_across_buckets() -> None:
    patterns = [
        compile_pattern("https://*.example.com/cb", "wildcard"),
        compile_pattern("https://a.example.com/*", "exact-host-glob"),
        compile_pattern("https://a.example.com/cb", "exact"),
    ]
    assert PatternSet(patterns).match(uri("https://a.example.com/cb")) == PatternMatch(
        pattern="https://*.example.com/cb", label="wildcard"
    )
    reordered = PatternSet(list(reversed(patterns)))
    assert reordered.match(uri("https://a.example.com/cb")) == PatternMatch(
        pattern="https://a.example.com/cb", label="exact"
    )
    middle_first = PatternSet([patterns[1], patterns[2], patterns[0]])
    assert middle_first.match(uri("https://a.example.com/cb")) == PatternMatch(
        pattern="https://a.example.com/*", label="exact-host-glob"
    )


def test_labels_are_reported() -> None:
    patterns = PatternSet(
        [
            compile_pattern("https://claude.ai/api/mcp/auth_callback", "managed:claude"),
            compile_pattern("http://localhost/callback", "managed:claude-code"),
            compile_pattern("https://tools.example.com/oauth/*", "custom"),
        ]
    )
    assert patterns.match(uri("https://claude.ai/api/mcp/auth_callback")) == PatternMatch(
        "https://claude.ai/api/mcp/auth_callback", "managed:claude"
    )
    found = patterns.match(uri("http://localhost:61234/callback"))
    assert found is not None and found.label == "managed:claude-code"
    found = patterns.match(uri("https://tools.example.com/oauth/cb"))
    assert found is not None and (found.pattern, found.label) == (
        "https://tools.example.com/oauth/*",
        "custom",
    )
    assert patterns.match(uri("https://claude.ai/api/mcp/other")) is None


def test_same_pattern_twice_reports_the_first_label() -> None:
    patterns = PatternSet(
        [
            compile_pattern("http://localhost/oauth/callback", "managed:mcp-remote"),
            compile_pattern("http://localhost/oauth/callback", "managed:gemini-cli"),
        ]
    )
    found = patterns.match(uri("http://localhost:3333/oauth/callback"))
    assert found is not None and found.label == "managed:mcp-remote"


def test_set_size_iteration_and_mode() -> None:
    compiled = [compile_pattern(f"https://h{i}.example/cb", "custom") for i in range(3)]
    patterns = PatternSet(compiled, LoopbackMode.EXACT)
    assert len(patterns) == 3
    assert list(patterns) == compiled
    assert patterns.loopback is LoopbackMode.EXACT
    assert len(PatternSet([])) == 0
    assert PatternSet([]).match(uri("https://h0.example/cb")) is None


def test_index_with_ten_thousand_distinct_hosts() -> None:
    noise = [compile_pattern(f"https://app{i}.example.com/oauth/*", "noise") for i in range(5000)]
    noise += [compile_pattern(f"https://*.tenant{i}.example.org/cb", "noise") for i in range(4990)]
    noise += [compile_pattern(f"com.example.app{i}:/cb", "noise") for i in range(10)]
    target = compile_pattern("https://target.example.net/oauth/callback", "target")
    patterns = PatternSet([*noise[:5000], target, *noise[5000:]])
    assert len(patterns) == 10_001
    assert patterns.match(uri("https://target.example.net/oauth/callback")) == PatternMatch(
        "https://target.example.net/oauth/callback", "target"
    )
    # Near misses of the target match nothing at all.
    for raw in [
        "https://target.example.net/oauth/callback2",
        "https://target.example.net/oauth/callback?x",
        "https://target.example.net:8443/oauth/callback",
        "https://x.target.example.net/oauth/callback",
        "https://target.example.com/oauth/callback",
        "https://app5000.example.com/oauth/cb",  # beyond the noise range
        "https://a.b.tenant1.example.org/cb",
        "com.example.app10:/cb",
    ]:
        assert patterns.match(uri(raw)) is None, raw
    # And the noise still matches where it should, with its own label.
    for raw in [
        "https://app4999.example.com/oauth/x",
        "https://z.tenant4989.example.org/cb",
        "com.example.app9:/cb",
    ]:
        found = patterns.match(uri(raw))
        assert found is not None and found.label == "noise", raw


def test_many_paths_on_one_host() -> None:
    compiled = [compile_pattern(f"https://one.example/api/mcp/s{i}/cb", "c") for i in range(2000)]
    compiled.append(compile_pattern("https://one.example/api/*/x/cb", "glob"))
    patterns = PatternSet(compiled)
    found = patterns.match(uri("https://one.example/api/mcp/s1999/cb"))
    assert found is not None and found.pattern.endswith("/s1999/cb")
    found = patterns.match(uri("https://one.example/api/q/x/cb"))
    assert found is not None and found.label == "glob"
    assert patterns.match(uri("https://one.example/api/mcp/s2000/cb")) is None


# --- the managed list's own patterns load ---------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "https://chatgpt.com/connector/oauth/*",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "http://localhost:8787/callback",
        "http://127.0.0.1/",
        "http://localhost:3000/?*",
        "warp://mcp/oauth2callback",
        "https://antigravity.google/oauth-callback",
    ],
)
def test_real_client_patterns_compile(source: str) -> None:
    compile_pattern(source, "managed:x")
