"""Which IP addresses the gateway may connect to when it fetches a metadata document.

draft-ietf-oauth-client-id-metadata-document (§6, Security Considerations, SSRF): the
authorization server MUST NOT fetch a ``client_id`` URL whose host resolves to a
special-use address (RFC 6890).  Whoever writes a ``client_id`` chooses the host, and
therefore its DNS answers: without this check the gateway would fetch, on anyone's behalf,
from its own loopback, the cloud metadata service (``169.254.169.254``) or the private
network it sits in.

Why tables of our own rather than ``ipaddress``'s ``is_global``: Python's tables changed
between releases (3.11.10/3.12.4 fixed ``192.0.0.9``, ``2001:1::1``, ...; 3.13 added more)
and they know nothing of the IPv6 forms that carry an IPv4 address, so ``is_global`` says
``::ffff:127.0.0.1`` is merely "not global" for the wrong reason and ``64:ff9b::a9fe:a9fe``
(NAT64 to ``169.254.169.254``) is global.  The tables below are the IANA IPv4 and IPv6
Special-Purpose Address Registries (RFC 6890 §2.2.2-§2.2.3 and the RFCs that updated
them, as of 2026), plus multicast and the unallocated IPv6 space, written out with their
references so a reviewer can check each line against the registry.

Every registry entry is refused, including the few the registry calls globally reachable
(the PCP, TURN and DNS-SD anycast addresses, AMT, AS112, ORCHIDv2, DETs): they are service
addresses or identifiers, never a web server's, and the draft's rule is "special-use"
(RFC 6890), not "not globally reachable".

Six IPv6 forms carry an IPv4 address that a translator, a tunnel or the local stack
delivers to (the SSRF bypasses of PrefectHQ/fastmcp#4400 and #4426); each is judged by the
IPv4 address it carries, which must itself be acceptable:

* IPv4-mapped ``::ffff:a.b.c.d`` (RFC 4291 §2.5.5.2): a dual-stack socket connects to the
  IPv4 address itself;
* IPv4-compatible ``::a.b.c.d`` (RFC 4291 §2.5.5.1, deprecated);
* IPv4-translated ``::ffff:0:a.b.c.d`` (RFC 2765 §2.1, SIIT);
* NAT64 well-known prefix ``64:ff9b::/96`` (RFC 6052 §2.1): DNS64 networks synthesize these
  for every IPv4-only name, so they must work for public addresses; the local-use prefix
  ``64:ff9b:1::/48`` (RFC 8215) puts the IPv4 address where the operator chose and is
  refused outright; operators' network-specific prefixes cannot be known here;
* 6to4 ``2002:AABB:CCDD::/48`` (RFC 3056 §2): the IPv4 address is bits 16-47;
* Teredo ``2001:0::/32`` (RFC 4380 §4): the server's IPv4 address is bits 32-63, the
  client's the last 32 bits inverted (XOR ``0xffffffff``); both are judged;
* ISATAP interface identifiers ``…:0000:5efe:a.b.c.d`` / ``…:0200:5efe:a.b.c.d`` (RFC 5214
  §6.1), under any prefix: the router of that prefix tunnels to the IPv4 address.

``allow`` (configuration ``cimd.fetch.allow_private_addresses``) exempts networks, for the
tests and for deployments whose document servers are private; an exempt IPv4 address is
exempt inside every IPv6 form too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_ALL32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """One line of a special-purpose registry: a network, what it is, where it is defined.

    ``embedded`` is set for the IPv6 ranges that carry IPv4 addresses: it returns them,
    labelled, and the range is judged by them instead of refused."""

    network: IPNetwork
    name: str
    reference: str
    embedded: Callable[[IPv6Address], tuple[tuple[str, IPv4Address], ...]] | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.network}, {self.reference})"


def _low32(label: str) -> Callable[[IPv6Address], tuple[tuple[str, IPv4Address], ...]]:
    def embedded(ip: IPv6Address) -> tuple[tuple[str, IPv4Address], ...]:
        return ((label, IPv4Address(int(ip) & _ALL32)),)

    return embedded


def _sixtofour(ip: IPv6Address) -> tuple[tuple[str, IPv4Address], ...]:
    """RFC 3056 §2: ``2002:V4ADDR::/48``, the IPv4 address in bits 16-47."""
    return (("6to4", IPv4Address((int(ip) >> 80) & _ALL32)),)


def _teredo(ip: IPv6Address) -> tuple[tuple[str, IPv4Address], ...]:
    """RFC 4380 §4: prefix (32 bits), server IPv4 (32), flags (16), port (16, inverted),
    client IPv4 (32, inverted)."""
    value = int(ip)
    server = IPv4Address((value >> 64) & _ALL32)
    client = IPv4Address((value & _ALL32) ^ _ALL32)
    return (("Teredo server", server), ("Teredo client", client))


def _v4(network: str, name: str, reference: str) -> SpecialRange:
    return SpecialRange(IPv4Network(network), name, reference)


def _v6(
    network: str,
    name: str,
    reference: str,
    embedded: Callable[[IPv6Address], tuple[tuple[str, IPv4Address], ...]] | None = None,
) -> SpecialRange:
    return SpecialRange(IPv6Network(network), name, reference, embedded)


#: The IANA IPv4 Special-Purpose Address Registry (RFC 6890 §2.2.2, as updated), plus
#: multicast (RFC 5771), which that registry leaves to the IPv4 address space registry.
IPV4_SPECIAL: tuple[SpecialRange, ...] = (
    _v4("0.0.0.0/8", "'this network'", "RFC 791 §3.2, RFC 1122 §3.2.1.3"),
    _v4("0.0.0.0/32", "'this host on this network'", "RFC 1122 §3.2.1.3"),
    _v4("10.0.0.0/8", "a private-use address", "RFC 1918"),
    _v4("100.64.0.0/10", "shared address space (carrier-grade NAT)", "RFC 6598"),
    _v4("127.0.0.0/8", "a loopback address", "RFC 1122 §3.2.1.3"),
    _v4("169.254.0.0/16", "a link-local address", "RFC 3927"),
    _v4(
        "169.254.169.254/32",
        "the cloud instance metadata service (a link-local address)",
        "RFC 3927",
    ),
    _v4("172.16.0.0/12", "a private-use address", "RFC 1918"),
    _v4("192.0.0.0/24", "an IETF protocol assignment", "RFC 6890 §2.1"),
    _v4("192.0.0.0/29", "the IPv4 service continuity prefix (DS-Lite)", "RFC 7335"),
    _v4("192.0.0.8/32", "the IPv4 dummy address", "RFC 7600"),
    _v4("192.0.0.9/32", "the PCP anycast address", "RFC 7723"),
    _v4("192.0.0.10/32", "the TURN anycast address", "RFC 8155"),
    _v4("192.0.0.170/32", "a NAT64/DNS64 discovery address", "RFC 8880 §7.2, RFC 7050"),
    _v4("192.0.0.171/32", "a NAT64/DNS64 discovery address", "RFC 8880 §7.2, RFC 7050"),
    _v4("192.0.2.0/24", "a documentation address (TEST-NET-1)", "RFC 5737"),
    _v4("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    _v4("192.52.193.0/24", "automatic multicast tunneling (AMT)", "RFC 7450"),
    _v4("192.88.99.0/24", "the deprecated 6to4 relay anycast prefix", "RFC 7526"),
    _v4("192.88.99.2/32", "the 6a44 relay anycast address", "RFC 6751"),
    _v4("192.168.0.0/16", "a private-use address", "RFC 1918"),
    _v4("192.175.48.0/24", "the direct delegation AS112 service", "RFC 7534"),
    _v4("198.18.0.0/15", "a benchmarking address", "RFC 2544"),
    _v4("198.51.100.0/24", "a documentation address (TEST-NET-2)", "RFC 5737"),
    _v4("203.0.113.0/24", "a documentation address (TEST-NET-3)", "RFC 5737"),
    _v4("224.0.0.0/4", "a multicast address", "RFC 5771"),
    _v4("240.0.0.0/4", "a reserved address", "RFC 1112 §4"),
    _v4("255.255.255.255/32", "the limited broadcast address", "RFC 8190, RFC 919 §7"),
)

#: The IANA IPv6 Special-Purpose Address Registry (RFC 6890 §2.2.3, as updated), with the
#: non-unicast and deprecated blocks of the IPv6 address space registry; the forms that
#: carry an IPv4 address have ``embedded``.  Anything outside ``2000::/3`` that no line
#: names is refused too (:data:`IPV6_GLOBAL_UNICAST`).
IPV6_SPECIAL: tuple[SpecialRange, ...] = (
    _v6("::/128", "the unspecified address", "RFC 4291 §2.5.2"),
    _v6("::1/128", "the loopback address", "RFC 4291 §2.5.3"),
    _v6("::/96", "an IPv4-compatible address", "RFC 4291 §2.5.5.1", _low32("IPv4-compatible")),
    _v6("::ffff:0:0/96", "an IPv4-mapped address", "RFC 4291 §2.5.5.2", _low32("IPv4-mapped")),
    _v6(
        "::ffff:0:0:0/96", "an IPv4-translated address", "RFC 2765 §2.1", _low32("IPv4-translated")
    ),
    _v6("64:ff9b::/96", "the NAT64 well-known prefix", "RFC 6052 §2.1", _low32("NAT64")),
    _v6("64:ff9b:1::/48", "the local-use NAT64 prefix", "RFC 8215"),
    _v6("100::/64", "the discard-only prefix", "RFC 6666"),
    _v6("100:0:0:1::/64", "the dummy IPv6 prefix", "RFC 9780"),
    _v6("2001::/23", "an IETF protocol assignment", "RFC 2928"),
    _v6("2001::/32", "a Teredo address", "RFC 4380 §4", _teredo),
    _v6("2001:1::1/128", "the PCP anycast address", "RFC 7723"),
    _v6("2001:1::2/128", "the TURN anycast address", "RFC 8155"),
    _v6("2001:1::3/128", "the DNS-SD service registration anycast address", "RFC 9665"),
    _v6("2001:2::/48", "a benchmarking address", "RFC 5180"),
    _v6("2001:3::/32", "automatic multicast tunneling (AMT)", "RFC 7450"),
    _v6("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    _v6("2001:10::/28", "a deprecated ORCHID identifier", "RFC 4843"),
    _v6("2001:20::/28", "an ORCHIDv2 identifier", "RFC 7343"),
    _v6("2001:30::/28", "a drone remote ID entity tag (DET)", "RFC 9374"),
    _v6("2001:db8::/32", "a documentation address", "RFC 3849"),
    _v6("2002::/16", "a 6to4 address", "RFC 3056 §2", _sixtofour),
    _v6("2620:4f:8000::/48", "the direct delegation AS112 service", "RFC 7534"),
    _v6("3fff::/20", "a documentation address", "RFC 9637"),
    _v6("5f00::/16", "a segment routing (SRv6) SID", "RFC 9602"),
    _v6("fc00::/7", "a unique local address", "RFC 4193"),
    _v6("fe80::/10", "a link-local address", "RFC 4291 §2.5.6"),
    _v6("fec0::/10", "a deprecated site-local address", "RFC 3879"),
    _v6("ff00::/8", "a multicast address", "RFC 4291 §2.7"),
)

#: Global unicast (RFC 4291 §2.4; the IANA IPv6 Address Space registry): the rest of the
#: IPv6 space is reserved, unallocated, local or multicast.
IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")

#: RFC 5214 §6.1: an ISATAP interface identifier is ``00-00-5E-FE`` (``02-00-5E-FE`` when
#: the IPv4 address is global; the u and g bits may vary) followed by the IPv4 address.
_ISATAP_MASK = 0xFCFFFFFF
_ISATAP_ID = 0x00005EFE


def _most_specific_first(ranges: Iterable[SpecialRange]) -> tuple[SpecialRange, ...]:
    return tuple(sorted(ranges, key=lambda r: r.network.prefixlen, reverse=True))


_V4_LOOKUP = _most_specific_first(IPV4_SPECIAL)
_V6_LOOKUP = _most_specific_first(IPV6_SPECIAL)


def special_range(ip: IPAddress) -> SpecialRange | None:
    """The most specific registry line ``ip`` falls in, or ``None``."""
    table = _V4_LOOKUP if ip.version == 4 else _V6_LOOKUP
    return next((entry for entry in table if ip in entry.network), None)


def embedded_ipv4(ip: IPv6Address) -> tuple[tuple[str, IPv4Address], ...]:
    """The IPv4 addresses an IPv6 address carries, each with the form that carries it."""
    entry = special_range(ip)
    found = entry.embedded(ip) if entry is not None and entry.embedded is not None else ()
    if isatap := _isatap(ip):
        found = (*found, isatap)
    return found


def _isatap(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    value = int(ip)
    if ((value >> 32) & _ISATAP_MASK) != _ISATAP_ID:
        return None
    return ("ISATAP", IPv4Address(value & _ALL32))


def address_problem(ip: IPAddress, allow: tuple[IPNetwork, ...] = ()) -> str | None:
    """Why the gateway may not connect to ``ip``, or ``None`` when it may.

    ``allow`` exempts networks (``cimd.fetch.allow_private_addresses``).  The sentence
    names the address, what it is and the RFC that says so, for the audit event.
    """
    if _allowed(ip, allow):
        return None
    if ip.version == 4:
        entry = special_range(ip)
        return None if entry is None else f"{ip} is {entry.describe()}"
    return _ipv6_problem(ip, allow)


def _ipv6_problem(ip: IPv6Address, allow: tuple[IPNetwork, ...]) -> str | None:
    if ip.scope_id is not None:  # only link-local addresses take a zone; never fetchable
        return f"{ip} has a zone index (RFC 4007 §11)"
    entry = special_range(ip)
    if entry is not None and entry.embedded is None:
        return f"{ip} is {entry.describe()}"
    if entry is None and ip not in IPV6_GLOBAL_UNICAST:
        return f"{ip} is outside the global unicast space ({IPV6_GLOBAL_UNICAST}, RFC 4291 §2.4)"
    for form, inner in embedded_ipv4(ip):
        inner_entry = None if _allowed(inner, allow) else special_range(inner)
        if inner_entry is not None:
            return f"{ip} carries the IPv4 address {inner} ({form}), {inner_entry.describe()}"
    return None


def _allowed(ip: IPAddress, allow: tuple[IPNetwork, ...]) -> bool:
    if not allow:
        return False
    plain = ip if ip.version == 4 or ip.scope_id is None else IPv6Address(int(ip))
    return any(plain in network for network in allow)
