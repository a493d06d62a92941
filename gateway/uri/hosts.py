"""Host names in URIs: one normal form, and refusal wherever readers could disagree.

A host decides where a browser sends an authorization code and where an authorization
server connects, so the gateway must read it exactly as every other consumer downstream
does (a browser's WHATWG URL parser, Node's, the authorization server's), or refuse it.

* IPv6 literals are compressed (RFC 5952), without zone ids (RFC 6874) or IPvFuture.
* Names are mapped with UTS #46 (STD3 rules, non-transitional), one trailing dot is
  removed, and the result must be canonical dotted-quad IPv4 or a valid IDNA2008 name in
  A-label form.  A name WHATWG URL would read as an IPv4 number (``2130706433``,
  ``0x7f.1``, ``127.1``, ``0177.0.0.1``) is refused: it means one thing to a browser and
  another to most servers.
* **Unstable internationalized names are refused** (``unstable_host``).  Two IDNA
  implementations built on different Unicode versions always disagree somewhere:
  ``stra\\u1e9ee`` (U+1E9E) is ``straße`` to Unicode 16's UTS #46 and ``strasse`` to
  Unicode 15.1's, so a block list on one was walked around on the other.  A non-ASCII name
  is accepted only when its mapping is the same whichever way it is computed:

  - no code point of :mod:`gateway.unicode.idna_stability`'s committed table: the UTS #46
    deviations (ß, ς, ZWJ, ZWNJ, §6) and every code point whose mapping differs between
    UTS #46, NFKC case folding of Python's Unicode database, and IDNA2003's Unicode 3.2
    nameprep (``\u10a0``, ``\u04c0``, ``\u2132``, Cherokee capitals, ...);
  - every code point assigned in Unicode 14 (Python's own database, older than any
    consumer's);
  - for the whole name, the UTS #46 mapping (``idna``'s tables) equal to NFKC case folding
    from Python's database, and ada (the WHATWG URL parser) mapping the name as written and
    as mapped to the same A-labels.

  Where independent mappings of different Unicode versions agree, consumers agree too; the
  tests compare the result with Node's own ``new URL()`` over generated hosts.

Special-use names (``localhost``, ``.local``, ``.internal``, ...) matter only for URLs that
are fetched; :func:`internal_host_problem` names them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata

import ada_url
import idna
from publicsuffixlist import PublicSuffixList

from gateway.unicode.idna_stability import DEVIATIONS as IDNA_DEVIATIONS
from gateway.unicode.idna_stability import first_unstable

#: UTS #46 §6 deviation characters: mapped differently by transitional processing.
DEVIATIONS = frozenset(chr(point) for point in IDNA_DEVIATIONS)
#: Label separators UTS #46 maps to '.' (ideographic, fullwidth, halfwidth full stops).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
#: Names that never belong to the public DNS (RFC 6761, RFC 6762, RFC 8375, ICANN's
#: ``.internal``) and names commonly used for private networks: an authorization server
#: must not be made to fetch from them.
SPECIAL_USE_SUFFIXES = (
    "localhost",
    "local",
    "internal",
    "home.arpa",
    "localdomain",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
    "test",
    "invalid",
    "onion",
    "svc",
)

_LDH_HOST_RE = re.compile(r"[A-Za-z0-9.\-]+")
_LDH_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?")
_HEX_NUMBER_RE = re.compile(r"0x[0-9a-f]*")
_IPV4_OCTET_RE = re.compile(r"0|[1-9][0-9]{0,2}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")


class HostError(ValueError):
    """Why a host is refused: ``kind`` is ``malformed``, ``unstable_host`` or
    ``ip_number`` (a name WHATWG URL reads as a non-canonical IPv4 address)."""

    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(problem)
        self.kind = kind
        self.problem = problem


def normalize_host(text: str, *, pattern: bool = False) -> tuple[str, bool]:
    """The normal form of an http(s) host and whether it is a ``*.`` pattern host;
    raises :class:`HostError`."""
    wildcard = False
    if pattern and text.startswith("*."):
        wildcard, text = True, text[2:]
    if "*" in text:
        if text == "*":
            why = "a bare '*' host would match every host; name the host"
        else:
            why = "a '*' in a host is only allowed as the whole leftmost label ('*.example.com')"
        raise HostError("malformed", f"has a wildcard host: {why}")
    if text.startswith("["):
        if wildcard:
            raise HostError("malformed", "puts '*.' in front of an IP address")
        return normalize_ipv6(text), False
    if "%" in text:
        raise HostError(
            "malformed", "has percent-encoding in its host; write the host as plain text"
        )
    mapped = text.lower() if _LDH_HOST_RE.fullmatch(text) else _stable_mapping(text)
    mapped = mapped.removesuffix(".")
    labels = mapped.split(".")
    if "" in labels:
        raise HostError("malformed", "has an empty label in its host ('..' or a leading '.')")
    if _ends_in_number(labels[-1]):
        if not _is_canonical_ipv4(labels):
            raise HostError(
                "ip_number",
                f"has the host '{mapped}', which browsers read as an IPv4 address; only "
                "canonical dotted-quad IPv4 (like 127.0.0.1) is accepted",
            )
        if wildcard:
            raise HostError("malformed", "puts '*.' in front of an IP address")
        return mapped, False
    ascii_host = to_ascii(mapped)
    if ascii_host is None:
        raise HostError("malformed", f"has a host that is not a valid IDNA name: '{mapped}'")
    if wildcard and ascii_host.count(".") < 1:
        raise HostError(
            "malformed",
            f"has the wildcard host '*.{ascii_host}'; '*.' needs at least two labels after it, "
            "so that it can never cover a whole top-level domain",
        )
    return ascii_host, wildcard


def _stable_mapping(text: str) -> str:
    """The UTS #46 mapping of a non-ASCII host, or :class:`HostError` when it is unstable
    (see the module docstring) or invalid."""
    index = first_unstable(text)
    if index is not None:
        char = text[index]
        why = (
            "a deviation character (UTS #46 §6)"
            if char in DEVIATIONS
            else "a character whose IDNA mapping differs between Unicode versions"
        )
        raise HostError(
            "unstable_host",
            f"has {_char(char)} in its host, {why}: IDNA implementations read it differently",
        )
    if not text.isprintable():  # controls and spaces are refused earlier: this is Cn/Co
        char = next(c for c in text if not c.isprintable())
        raise HostError(
            "unstable_host",
            f"has {_char(char)} in its host, a code point unassigned in Unicode 14 (newer "
            "than older IDNA implementations know) or for private use",
        )
    try:
        mapped = idna.uts46_remap(text, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise HostError(
            "malformed", f"has a host that is not a valid domain name ({exc})"
        ) from None
    if not mapped.isascii() and ada_url.idna.encode(text) != ada_url.idna.encode(mapped):
        raise HostError(
            "unstable_host",
            "has a host that the WHATWG URL parser maps differently from UTS #46",
        )
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if unicodedata.normalize("NFC", folded.translate(_DOTS)) != unicodedata.normalize(
        "NFC", mapped
    ):
        raise HostError(
            "unstable_host",
            "has a host whose IDNA mapping differs between Unicode versions (UTS #46 "
            "tables and Unicode 14 case folding disagree)",
        )
    return mapped


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def normalize_ipv6(text: str) -> str:
    """An IP-literal (RFC 3986 §3.2.2): IPv6 only, no zone id (RFC 6874), RFC 5952 form."""
    if not text.endswith("]"):
        raise HostError("malformed", "has an IPv6 address without its closing ']'")
    inner = text[1:-1]
    if "%" in inner:
        raise HostError("malformed", "has an IPv6 zone identifier, which is not accepted")
    if inner[:1] in ("v", "V"):
        raise HostError("malformed", "has an IPvFuture address, which is not accepted")
    if not _IPV6_CHARS_RE.fullmatch(inner):
        raise HostError("malformed", f"has an invalid IPv6 address '{inner}'")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise HostError("malformed", f"has an invalid IPv6 address '{inner}'") from None
    return f"[{address.compressed}]"


def is_ip_address(host: str) -> bool:
    """Whether a normalized host is an IP address (bracketed IPv6 or dotted-quad IPv4)."""
    return host.startswith("[") or _ends_in_number(host.rsplit(".", 1)[-1])


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List snapshot the ``publicsuffixlist`` release carries."""
    return PublicSuffixList()


def internal_host_problem(host: str) -> str | None:
    """Why a normalized DNS host cannot be fetched from safely, or ``None``.

    Beyond the special-use names, a fetched host must be a registrable name under a public
    suffix (the Public Suffix List): ``kubernetes.default`` or ``vault.corp`` resolve only
    through a private resolver's search domains, ``co.uk`` is no one's host.
    """
    if "." not in host:
        return f"'{host}' is a single-label name, resolved by local search domains only"
    for suffix in SPECIAL_USE_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return f"'{host}' is under .{suffix}, a special-use or private name"
    if _public_suffixes().privatesuffix(host, accept_unknown=False) is None:
        return (
            f"'{host}' is not a registrable name under a public suffix (an unknown top-level "
            "domain resolves only through private search domains)"
        )
    return None


def host_within(host: str, domains: tuple[str, ...]) -> bool:
    """Whether a normalized host is one of ``domains`` or a subdomain of one."""
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def warm_up() -> None:
    """Load the data the first internationalized or fetched host would otherwise load in
    the middle of a request (the Public Suffix List, the unstable code points)."""
    _public_suffixes()
    first_unstable("")


def _ends_in_number(label: str) -> bool:
    """WHATWG URL's "ends in a number" test: such a host is parsed as IPv4, not as a name."""
    return label.isascii() and (label.isdigit() or bool(_HEX_NUMBER_RE.fullmatch(label)))


def _is_canonical_ipv4(labels: list[str]) -> bool:
    """Four decimal octets 0-255 without leading zeros: the only IPv4 spelling accepted."""
    return len(labels) == 4 and all(
        _IPV4_OCTET_RE.fullmatch(label) and int(label) <= 255 for label in labels
    )


def to_ascii(mapped: str) -> str | None:
    """The A-label form of a UTS #46-mapped name, or ``None`` if it is not a valid name.

    Plain lower-case LDH names (the common case) are checked here directly.  Anything else
    is encoded by ada (the WHATWG URL parser Node and browsers implement, in C++: Punycode
    in pure Python costs half a millisecond per long label, which a request with twenty
    such hosts would turn into an event-loop stall).  Every label of the result must be a
    valid DNS label: 1-63 octets, letters, digits and hyphens, no hyphen at either end, and
    ``--`` in the third and fourth positions only for an ``xn--`` label; an ``xn--`` label
    that was written as such must decode to a stable internationalized label that encodes
    back to itself (RFC 5891 §5.4).
    """
    labels = mapped.split(".")
    if (
        mapped.isascii()
        and len(mapped) <= 253
        and all(_LDH_LABEL_RE.fullmatch(label) and label[2:4] != "--" for label in labels)
    ):
        return mapped
    encoded = mapped if mapped.isascii() else ada_url.idna.encode(mapped).decode("ascii")
    out = encoded.split(".")
    if not encoded or len(encoded) > 253 or len(out) != len(labels):
        return None
    for written, label in zip(labels, out, strict=True):
        if not _LDH_LABEL_RE.fullmatch(label):
            return None
        if label[2:4] != "--":
            continue
        if not label.startswith("xn--"):
            return None
        if written.isascii() and not _valid_a_label(label):
            return None
    return encoded


def _valid_a_label(label: str) -> bool:
    """An ``xn--`` label written as such: its Punycode must decode to a printable,
    non-ASCII, NFC label that encodes back to exactly this label (RFC 5891 §5.4).  Being
    ASCII, it reads the same to every consumer; the round trip refuses the labels some
    decoders would read one way and others another."""
    try:
        unicode = ada_url.idna.decode(label)
    except (ValueError, UnicodeError):
        return False
    if not unicode or unicode.isascii() or unicode == label or not unicode.isprintable():
        return False
    if unicodedata.normalize("NFC", unicode) != unicode:
        return False
    return ada_url.idna.encode(unicode) == label.encode("ascii")


def _char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}{' ' + name if name else ''}"
