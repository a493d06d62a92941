"""UTS #39 §4 confusable detection: ``skeleton()`` and the identity key built on it.

Two strings are confusable when their skeletons are equal.  The mapping is the Unicode
Consortium's ``confusables.txt`` (committed under ``gateway/data/unicode/``, its version in
its header), so ``Curs\\u2c9fr`` (Coptic small o), ``cl\\u0430udeai`` (Cyrillic a) and
``ChatG\\u0420\\u0422`` (Cyrillic Er and Te) all have the skeleton of the Latin name they
imitate.

skeleton(X), per UTS #39 §4: NFD, remove Default_Ignorable_Code_Points, replace each
character by its prototype, NFD again.  :func:`identity_key` adds what a consent screen
reader ignores too: compatibility forms (NFKC: fullwidth letters), letter case, and the
case of prototypes (``0`` has the prototype ``O``), iterated until nothing changes.
"""

from __future__ import annotations

import functools
import unicodedata

from gateway.bounded_cache import short_text_cache
from gateway.unicode.data import CONFUSABLES, records, version
from gateway.unicode.ignorable import default_ignorables


def data_version() -> str:
    """The Unicode version of the confusables data in use."""
    return version(CONFUSABLES)


#: Most small capitals have no UTS #39 prototype, yet ``\u1d04\u029f\u1d00\u1d1c\u1d05\u1d07``
#: reads as CLAUDE: the gateway maps each one the data leaves out to its Latin capital
#: (case folding then makes it the small letter).
SMALL_CAPITALS = {
    0x1D00: "A", 0x0299: "B", 0x1D04: "C", 0x1D05: "D", 0x1D07: "E", 0xA730: "F",
    0x0262: "G", 0x029C: "H", 0x026A: "I", 0x1D0A: "J", 0x1D0B: "K", 0x029F: "L",
    0x1D0D: "M", 0x0274: "N", 0x1D0F: "O", 0x1D18: "P", 0xA7AF: "Q", 0x0280: "R",
    0xA731: "S", 0x1D1B: "T", 0x1D1C: "U", 0x1D20: "V", 0x1D21: "W", 0x028F: "Y",
    0x1D22: "Z",
}  # fmt: skip


@functools.cache
def _table() -> dict[int, str]:
    """Code point -> prototype (UTS #39 data, then :data:`SMALL_CAPITALS`), with every
    Default_Ignorable_Code_Point removed, in sources and prototypes alike (UTS #39 §4 step
    2 removes them first, so no prototype may bring one back)."""
    ignorable = default_ignorables()
    drop = {point: None for point in ignorable}
    table: dict[int, str] = {}
    for fields in records(CONFUSABLES):
        prototype = "".join(chr(int(point, 16)) for point in fields[1].split())
        table[int(fields[0], 16)] = prototype.translate(drop)
    for point, prototype in SMALL_CAPITALS.items():
        table.setdefault(point, prototype)  # UTS #39's own prototype wins where it has one
    table.update(dict.fromkeys(ignorable, ""))
    return table


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``."""
    nfd = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", nfd.translate(_table()))


@short_text_cache  # the names clients send repeat; a long one is not kept
def identity_keys(text: str) -> tuple[str, ...]:
    """What a name is to a reader, as one or two keys: NFKC, then the confusable skeleton
    and case folding repeated until stable, whitespace collapsed.

    Confusability, compatibility forms and case interact, so both orders are kept.
    Skeleton first, Cyrillic
    capital Te (U+0422) is Latin ``T`` (its lower case, U+0442, looks like a small capital,
    not like ``t``); case fold first, ``ADMIN`` is ``admin`` (the skeleton of capital ``I``
    is ``l``, that of ``i`` is ``i``).  Two names are confusable when any of their keys are
    equal.
    """
    first = _settle(text, fold_first=True)
    second = _settle(text, fold_first=False)
    return (first,) if first == second else (first, second)


def _settle(key: str, *, fold_first: bool) -> str:
    """Apply NFKC, case folding and the skeleton until nothing changes (a prototype can be
    upper case: ``0`` has the prototype ``O``; a compatibility form can have one that NFKC
    would erase: U+03F2 GREEK LUNATE SIGMA SYMBOL is ``c`` to the skeleton but ``ς`` to
    NFKC, so the skeleton-first order starts from the text as written); a few rounds at
    most, since each only maps towards prototypes."""
    for _ in range(4):
        if fold_first:
            changed = skeleton(unicodedata.normalize("NFKC", key).casefold())
        else:
            changed = unicodedata.normalize("NFKC", skeleton(key)).casefold()
        changed = " ".join(changed.split())
        if changed == key:
            break
        key = changed
    return key
