"""Host names: normal form, refusals, special-use names (gateway.uri.hosts)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.policy.patterns import PatternError, compile_pattern
from gateway.uri.hosts import (
    SPECIAL_USE_SUFFIXES,
    HostError,
    host_within,
    internal_host_problem,
    is_ip_address,
    normalize_host,
)


def refused(text: str, *, pattern: bool = False) -> HostError:
    with pytest.raises(HostError) as caught:
        normalize_host(text, pattern=pattern)
    return caught.value


# --- normalize_host: accepted ------------------------------------------------------------

NORMALIZED = [
    ("example.com", "example.com"),
    ("EXAMPLE.Com", "example.com"),
    ("example.com.", "example.com"),  # one trailing dot: the same DNS name
    ("a-b.example.org", "a-b.example.org"),
    ("a--b.example.org", "a--b.example.org"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
    ("b\u00fccher.example.org", "xn--bcher-kva.example.org"),
    ("B\u00dcCHER.EXAMPLE.ORG", "xn--bcher-kva.example.org"),
    ("bu\u0308cher.example.org", "xn--bcher-kva.example.org"),  # decomposed u-umlaut
    ("xn--bcher-kva.example.org", "xn--bcher-kva.example.org"),
    ("XN--BCHER-KVA.EXAMPLE.ORG", "xn--bcher-kva.example.org"),
    ("xn--strae-oqa.example.org", "xn--strae-oqa.example.org"),  # an A-label is read literally
    ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),  # fullwidth
    ("\u4f8b\u3048.\u30c6\u30b9\u30c8", "xn--r8jz45g.xn--zckzah"),
    ("\u03a3\u039f\u03a6\u039f\u03a3.example.org", "xn--0xaakcn.example.org"),  # capital sigma
    ("\u2163.example.org", "iv.example.org"),  # ROMAN NUMERAL FOUR
    ("127.0.0.1", "127.0.0.1"),
    ("0.0.0.0", "0.0.0.0"),
    ("255.255.255.255", "255.255.255.255"),
    ("127.0.0.1.", "127.0.0.1"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1"),  # fullwidth digits
    ("[::1]", "[::1]"),
    ("[0:0:0:0:0:0:0:1]", "[::1]"),
    ("[2001:DB8:0:0:0:0:0:1]", "[2001:db8::1]"),
    ("[::FFFF:127.0.0.1]", "[::ffff:7f00:1]"),
]


@pytest.mark.parametrize(("text", "normal"), NORMALIZED, ids=[repr(t) for t, _ in NORMALIZED])
def test_normal_form(text: str, normal: str) -> None:
    assert normalize_host(text) == (normal, False)
    assert normalize_host(normal) == (normal, False)  # the normal form is a fixed point


def test_a_pattern_host_wildcard() -> None:
    assert normalize_host("*.Example.COM", pattern=True) == ("example.com", True)
    assert normalize_host("*.b\u00fccher.example.org", pattern=True) == (
        "xn--bcher-kva.example.org",
        True,
    )


# --- normalize_host: refused -------------------------------------------------------------

MALFORMED = [
    "a..b",
    ".example.com",
    "example.com..",
    "ex%61mple.com",  # percent-encoding in a host
    "a_b.example.org",
    "-a.example.org",
    "a-.example.org",
    "ab--c.example.org",  # '--' in positions 3-4 without xn--
    "a" * 64 + ".example",
    ".".join(["a" * 63] * 4),  # over 253 octets
    "*",
    "*.example.com",  # a wildcard outside a pattern
    "x.*.example.com",
    "[fe80::1%eth0]",
    "[fe80::1%25eth0]",
    "[v1.fe80::1]",
    "[127.0.0.1]",
    "[]",
    "[::1]x",
    "[12345::1]",
    "a\u2024b.example.org",  # ONE DOT LEADER: disallowed under STD3 rules
    "a\uff0fb.example.org",  # FULLWIDTH SOLIDUS
    "a\uff20b.example.org",  # FULLWIDTH COMMERCIAL AT
]


@pytest.mark.parametrize("text", MALFORMED, ids=repr)
def test_malformed(text: str) -> None:
    assert refused(text).kind == "malformed"


@pytest.mark.parametrize(
    "text", ["*.com", "*.[::1]", "*.127.0.0.1", "**.example.com", "*"], ids=repr
)
def test_malformed_pattern_hosts(text: str) -> None:
    assert refused(text, pattern=True).kind == "malformed"


@pytest.mark.parametrize(
    "text",
    [
        "[::1",  # no closing bracket: must not become [::]
        "[2001:db8::12",  # must not become [2001:db8::1]
    ],
    ids=repr,
)
def test_an_unclosed_ipv6_literal_is_malformed(text: str) -> None:
    assert refused(text).kind == "malformed"


IP_NUMBERS = [
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0x7F.0.0.1",
    "0177.0.0.1",
    "017700000001",
    "127.1",
    "127.0.1",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "127.000.000.001",
    "0",
    "0x",
    "09",
    "a.b.123",  # ends in a number: WHATWG parses it as IPv4 and fails
    "example.0x10",
]


@pytest.mark.parametrize("text", IP_NUMBERS, ids=repr)
def test_non_canonical_ipv4_is_an_ip_number(text: str) -> None:
    assert refused(text).kind == "ip_number"


UNSTABLE = [
    "stra\u00dfe.example.org",  # sharp s: a deviation character
    "\u00df.example.org",
    "\u03c3\u03bf\u03c6\u03bf\u03c2.example.org",  # final sigma: a deviation character
    "stra\u1e9ee.example.org",  # capital sharp s: UTS 46 and case folding disagree
    "x\u1c89.example.org",  # Unicode 16
    "x\ua7cb.example.org",  # Unicode 16
    "x\U00011f04.example",  # Unicode 15
    "a\u034fb.example.org",  # combining grapheme joiner
    "a\ufe0fb.example.org",  # variation selector 16
    "a\U000e0100b.example",  # variation selector 17
    "a\u3164b.example.org",  # Hangul filler
    "a\u17b4b.example.org",  # Khmer inherent vowel
    "a\u180bb.example.org",  # Mongolian free variation selector
]


@pytest.mark.parametrize("text", UNSTABLE, ids=repr)
def test_unstable_internationalized_hosts(text: str) -> None:
    assert refused(text).kind == "unstable_host"
    assert refused("*." + text, pattern=True).kind == "unstable_host"


@pytest.mark.parametrize(
    "text", ["stra\u00dfe.example.org", "a\u034fb.example.org", "x\u1c89.example.org"]
)
def test_a_pattern_with_an_unstable_host_does_not_compile(text: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(f"https://{text}/cb", "custom")
    assert "redirect_uri.unstable_host" in str(caught.value)


_HOST_CHARS = st.sampled_from(
    [
        *"abcxyz019-.[:]%_*",
        *("\u00fc", "\u00df", "\u03c2", "\u1e9e", "\u3002", "\uff0e", "\uff41", "\u0430"),
        *("\u034f", "\ufe0f", "\u0130", "\u2160"),
    ]
)
_HOSTS = st.text(_HOST_CHARS, min_size=1, max_size=24) | st.text(max_size=24)


@given(_HOSTS, st.booleans())
@example("b\u00fccher.example.org", False)
@example("*.example.com", True)
def test_normalize_host_refuses_only_with_host_error(text: str, pattern: bool) -> None:
    try:
        host, wildcard = normalize_host(text, pattern=pattern)
    except HostError as error:
        assert error.kind in ("malformed", "unstable_host", "ip_number")
        return
    assert host == host.lower()
    assert host.isascii()
    assert not host.endswith(".")
    assert normalize_host(host) == (host, False)
    if wildcard:
        assert pattern


# --- is_ip_address -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("0.0.0.0", True),
        ("[::1]", True),
        ("[::ffff:7f00:1]", True),
        ("[2001:db8::1]", True),
        ("example.com", False),
        ("localhost", False),
        ("127.0.0.1.nip.io", False),
        ("1.2.3.4.example.org", False),
        ("xn--bcher-kva.example.org", False),
        ("0x7f.example.org", False),
    ],
)
def test_is_ip_address(host: str, expected: bool) -> None:
    assert is_ip_address(host) is expected


@pytest.mark.parametrize("text", [t for t, n in NORMALIZED if n[0].isdigit() or n[0] == "["])
def test_every_normalized_ip_is_an_ip_address(text: str) -> None:
    assert is_ip_address(normalize_host(text)[0])


# --- internal_host_problem -------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "keys.acme.example.org",
        "localhost.example.com",
        "local.example.org",
        "mylocal.com",
        "internal.example.org",
        "testing.com",
        "foo.arpa",
        "xn--bcher-kva.example.org",
    ],
)
def test_public_names(host: str) -> None:
    assert internal_host_problem(host) is None


@pytest.mark.parametrize("host", ["localhost", "local", "intranet", "keycloak-db", "arpa"])
def test_single_label_names(host: str) -> None:
    problem = internal_host_problem(host)
    assert problem is not None and "single-label" in problem


@pytest.mark.parametrize("suffix", [s for s in SPECIAL_USE_SUFFIXES if "." in s])
def test_a_multi_label_special_use_name_itself(suffix: str) -> None:
    assert internal_host_problem(suffix) is not None


@pytest.mark.parametrize("suffix", SPECIAL_USE_SUFFIXES)
def test_names_under_every_special_use_suffix(suffix: str) -> None:
    for host in (f"x.{suffix}", f"a.b.{suffix}"):
        problem = internal_host_problem(host)
        assert problem is not None and f".{suffix}" in problem


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal",
        "host.docker.internal",
        "ip-10-0-0-5.ec2.internal",
        "keycloak.keycloak.svc.cluster.local",
        "printer.local",
        "router.home.arpa",
        "nas.lan",
        "wiki.corp",
        "app.localhost",
        "localhost.localdomain",
    ],
)
def test_well_known_internal_names(host: str) -> None:
    assert internal_host_problem(host) is not None


# --- host_within ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "domains", "expected"),
    [
        ("claude.ai", ("claude.ai",), True),
        ("www.claude.ai", ("claude.ai",), True),
        ("a.b.c.claude.ai", ("claude.ai",), True),
        ("cdn.anthropic.com", ("claude.ai", "anthropic.com"), True),
        ("evilclaude.ai", ("claude.ai",), False),
        ("claude.ai.evil.example.org", ("claude.ai",), False),
        ("ai", ("claude.ai",), False),
        ("claude.com", ("claude.ai",), False),
        ("claude.ai", (), False),
        ("xn--bcher-kva.example.org", ("xn--bcher-kva.example.org",), True),
        ("sub.xn--bcher-kva.example.org", ("xn--bcher-kva.example.org",), True),
    ],
)
def test_host_within(host: str, domains: tuple[str, ...], expected: bool) -> None:
    assert host_within(host, domains) is expected
