"""Special-use addresses (gateway.cimd.addresses): every registry line, every IPv6 form
that carries an IPv4 address, the exemptions, and agreement with Python's own tables where
those are right."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cimd.addresses import (
    IPV4_SPECIAL,
    IPV6_GLOBAL_UNICAST,
    IPV6_SPECIAL,
    SpecialRange,
    address_problem,
    embedded_ipv4,
    special_range,
)

EMBEDDING = tuple(r for r in IPV6_SPECIAL if r.embedded is not None)
REFUSED_V6 = tuple(r for r in IPV6_SPECIAL if r.embedded is None)

GLOBAL_V4 = ["8.8.8.8", "1.1.1.1", "160.79.104.10", "100.63.255.255", "100.128.0.0",
             "172.15.255.255", "172.32.0.0", "192.0.1.1", "192.167.255.255", "198.20.0.0",
             "198.17.255.255", "223.255.255.255", "11.0.0.1", "126.255.255.255"]  # fmt: skip
GLOBAL_V6 = ["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888",
             "2001:200::1", "2620:4f:7fff::1", "3fff:1000::1", "2400:cb00::1"]  # fmt: skip


def in_network(network: IPv4Network | IPv6Network) -> st.SearchStrategy:
    """Any address of ``network``."""
    kind = IPv4Address if network.version == 4 else IPv6Address
    low, high = int(network.network_address), int(network.broadcast_address)
    return st.integers(low, high).map(kind)


def global_v4() -> st.SearchStrategy[IPv4Address]:
    """IPv4 addresses on no registry line: what may be fetched from."""
    return st.integers(0, 2**32 - 1).map(IPv4Address).filter(lambda a: special_range(a) is None)


def special_v4() -> st.SearchStrategy[IPv4Address]:
    """IPv4 addresses on some registry line."""
    return st.sampled_from(IPV4_SPECIAL).flatmap(lambda r: in_network(r.network))


# The IPv6 forms that carry an IPv4 address, as functions of that address.
def mapped(v4: IPv4Address) -> IPv6Address:
    return IPv6Address((0xFFFF << 32) | int(v4))


def compatible(v4: IPv4Address) -> IPv6Address:
    return IPv6Address(int(v4))


def translated(v4: IPv4Address) -> IPv6Address:
    return IPv6Address((0xFFFF << 48) | int(v4))


def nat64(v4: IPv4Address) -> IPv6Address:
    return IPv6Address((0x0064FF9B << 96) | int(v4))


def sixtofour(v4: IPv4Address) -> IPv6Address:
    return IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)


def teredo_client(v4: IPv4Address) -> IPv6Address:
    server = int(IPv4Address("65.54.227.120"))
    return IPv6Address((0x20010000 << 96) | (server << 64) | (int(v4) ^ 0xFFFFFFFF))


def teredo_server(v4: IPv4Address) -> IPv6Address:
    client = int(IPv4Address("8.8.4.4")) ^ 0xFFFFFFFF
    return IPv6Address((0x20010000 << 96) | (int(v4) << 64) | client)


def isatap(v4: IPv4Address) -> IPv6Address:
    prefix = int(IPv6Address("2606:4700::")) & ~((1 << 64) - 1)
    return IPv6Address(prefix | (0x00005EFE << 32) | int(v4))


FORMS = [mapped, compatible, translated, nat64, sixtofour, teredo_client, teredo_server, isatap]


def entry_id(entry: SpecialRange) -> str:
    return str(entry.network)


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("entry", IPV4_SPECIAL + REFUSED_V6, ids=entry_id)
def test_each_line_refuses_its_first_and_last_address(entry):
    """Both ends of every refused registry line are refused, and when the line is the most
    specific one the message names it and its RFC."""
    for ip in (entry.network.network_address, entry.network.broadcast_address):
        problem = address_problem(ip)
        assert problem is not None, ip
        if special_range(ip) == entry:
            assert entry.reference in problem and str(entry.network) in problem


@pytest.mark.parametrize("entry", IPV4_SPECIAL + REFUSED_V6, ids=entry_id)
@settings(max_examples=30)
@given(data=st.data())
def test_each_line_refuses_any_address_in_it(entry, data):
    """Any address on a refused line is refused, unless a more specific line carries an
    IPv4 address (Teredo within 2001::/23), which is then judged instead."""
    ip = data.draw(in_network(entry.network))
    most_specific = special_range(ip)
    assert most_specific is not None
    if most_specific.embedded is None:
        assert address_problem(ip) is not None


def test_tables_list_what_the_brief_names():
    """The ranges everyone gets wrong are on the lists (CGNAT, 0/8, benchmarking, the
    documentation nets, 240/4, broadcast, NAT64 local use, discard, ORCHID, ...)."""
    v4 = {str(r.network) for r in IPV4_SPECIAL}
    v6 = {str(r.network) for r in IPV6_SPECIAL}
    assert {"100.64.0.0/10", "0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
            "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
            "255.255.255.255/32", "169.254.0.0/16"} <= v4  # fmt: skip
    assert {"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32",
            "64:ff9b:1::/48", "100::/64", "2001::/23", "64:ff9b::/96", "2002::/16",
            "2001::/32", "::ffff:0:0/96", "3fff::/20"} <= v6  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("169.254.169.254", "cloud instance metadata"),
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "RFC 1918"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.1.2.3", "'this network'"),
        ("192.0.0.9", "PCP anycast"),
        ("255.255.255.255", "limited broadcast"),
        ("239.1.1.1", "multicast"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "unique local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("2001:2::1", "benchmarking"),
        ("2001:20::1", "ORCHIDv2"),
        ("fec0::1", "site-local"),
    ],
)
def test_message_names_the_most_specific_line(text, words):
    """The sentence says what the address is, from the most specific registry line."""
    problem = address_problem(ip_address(text))
    assert problem is not None and words in problem and text in problem


@pytest.mark.parametrize("text", GLOBAL_V4 + GLOBAL_V6)
def test_global_addresses_are_accepted(text):
    """Ordinary unicast addresses, including the neighbours of refused ranges, pass."""
    assert address_problem(ip_address(text)) is None


@given(st.integers(0, 2**128 - 1).map(IPv6Address))
def test_ipv6_outside_global_unicast_is_refused(ip):
    """Outside 2000::/3 only the IPv4-carrying forms can pass (by their IPv4 address):
    the rest of the space is reserved, local or multicast."""
    if ip not in IPV6_GLOBAL_UNICAST and not embedded_ipv4(ip):
        assert address_problem(ip) is not None


def test_zone_index_is_refused():
    """An IPv6 address with a zone index (link-local by nature) is refused."""
    assert "zone" in (address_problem(IPv6Address("fe80::1%eth0")) or "")
    assert address_problem(IPv6Address("2606:4700::1%eth0")) is not None


# --------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
@settings(max_examples=50)
@given(v4=special_v4())
def test_every_form_carrying_a_special_ipv4_is_refused(form, v4):
    """Each IPv6 transition form wrapping a special-use IPv4 address is refused, and the
    message names the IPv4 address (the fastmcp #4400/#4426 bypasses)."""
    problem = address_problem(form(v4))
    assert problem is not None
    if special_range(form(v4)) is None or special_range(form(v4)).embedded is not None:
        assert str(v4) in problem


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
@settings(max_examples=50)
@given(v4=global_v4())
def test_every_form_carrying_a_global_ipv4_is_accepted(form, v4):
    """The same forms wrapping a global IPv4 address pass: DNS64 networks synthesize
    64:ff9b::/96 addresses for every IPv4-only site, and a mapped address is that site."""
    assert address_problem(form(v4)) is None


@pytest.mark.parametrize(
    ("text", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:a9fe:a9fe", "169.254.169.254"),
        ("::127.0.0.1", "127.0.0.1"),
        ("::a9fe:a9fe", "169.254.169.254"),
        ("::ffff:0:7f00:1", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::169.254.169.254", "169.254.169.254"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("2002:a9fe:a9fe::1", "169.254.169.254"),
        ("2001:0::80ff:fefe", "0.0.0.0"),  # Teredo server 0.0.0.0
        ("2001:0:4136:e378::80ff:fffe", "127.0.0.1"),  # Teredo client 127.0.0.1, inverted
        ("2001:0:a00:1::", "10.0.0.1"),  # Teredo server 10.0.0.1
        ("2606:4700::5efe:169.254.169.254", "169.254.169.254"),  # ISATAP
        ("2606:4700::200:5efe:10.0.0.1", "10.0.0.1"),  # ISATAP, u bit set
    ],
)
def test_published_bypasses_are_refused(text, inner):
    """The published SSRF bypass spellings are refused by their embedded address."""
    problem = address_problem(ip_address(text))
    assert problem is not None and inner in problem


def test_teredo_decoding_matches_rfc_4380_example():
    """RFC 4380's layout: 2001:0:4136:e378:8000:63bf:3fff:fdd2 is server 65.54.227.120 and
    client 192.0.2.45 (inverted), which is TEST-NET-1 and so refused; Python's own decoder
    agrees."""
    ip = IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    found = dict(embedded_ipv4(ip))
    assert found == {
        "Teredo server": IPv4Address("65.54.227.120"),
        "Teredo client": IPv4Address("192.0.2.45"),
    }
    assert ip.teredo == (found["Teredo server"], found["Teredo client"])
    assert "192.0.2.45" in (address_problem(ip) or "")


@given(st.integers(0, 2**80 - 1), global_v4())
def test_sixtofour_decoding_matches_python(low, v4):
    """The 6to4 IPv4 address is bits 16-47, as Python's ``sixtofour`` reads it."""
    ip = IPv6Address((0x2002 << 112) | (int(v4) << 80) | low)
    assert dict(embedded_ipv4(ip))["6to4"] == ip.sixtofour == v4


# --------------------------------------------------------------------------- allow


def test_allow_exempts_exactly_its_networks():
    """``allow`` exempts its networks, in the IPv6 forms of an exempt IPv4 address too,
    and nothing else."""
    allow = (ip_network("127.0.0.1/32"),)
    assert address_problem(IPv4Address("127.0.0.1"), allow) is None
    assert address_problem(IPv6Address("::ffff:127.0.0.1"), allow) is None
    assert address_problem(IPv6Address("64:ff9b::7f00:1"), allow) is None
    assert address_problem(IPv4Address("127.0.0.2"), allow) is not None
    assert address_problem(IPv6Address("::1"), allow) is not None
    assert address_problem(IPv6Address("::1"), (ip_network("::1/128"),)) is None
    assert address_problem(IPv4Address("10.9.8.7"), (ip_network("10.0.0.0/8"),)) is None


# --------------------------------------------------------------------------- oracle


@given(st.integers(0, 2**32 - 1).map(IPv4Address))
def test_ipv4_refuses_everything_python_calls_non_global(ip):
    """Where Python's tables say "not global", ours refuse too (ours are stricter: they
    also refuse multicast and the anycast service addresses)."""
    if not ip.is_global:
        assert address_problem(ip) is not None


@given(st.integers(0, 2**128 - 1).map(IPv6Address) | in_network(ip_network("2001::/23")))
def test_ipv6_refuses_everything_python_calls_non_global(ip):
    """The same for IPv6, outside the forms judged by the IPv4 address they carry (Python
    calls every IPv4-mapped and Teredo address non-global, whatever it carries)."""
    if not ip.is_global and not embedded_ipv4(ip):
        assert address_problem(ip) is not None
