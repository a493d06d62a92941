"""UTS #39 confusable skeletons and identity keys (gateway.unicode.confusables).

``confusables.txt`` is read here a second time, independently of ``gateway.unicode.data``.
"""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.unicode import data
from gateway.unicode.confusables import data_version, identity_keys, skeleton
from gateway.unicode.ignorable import default_ignorables


def _entries() -> list[tuple[str, str]]:
    text = data.path(data.CONFUSABLES).read_text(encoding="utf-8-sig")
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 3:
            continue
        source = "".join(chr(int(p, 16)) for p in fields[0].split())
        prototype = "".join(chr(int(p, 16)) for p in fields[1].split())
        out.append((source, prototype))
    return out


ENTRIES = _entries()
TABLE = dict(ENTRIES)


def _u(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text)


def _confusable(a: str, b: str) -> bool:
    return bool(set(identity_keys(a)) & set(identity_keys(b)))


# --- the data ---------------------------------------------------------------------------


def test_the_committed_file_states_unicode_17() -> None:
    assert data_version() == "17.0.0"
    header = data.path(data.CONFUSABLES).read_text(encoding="utf-8-sig").splitlines()[:12]
    assert "# Version: 17.0.0" in header


def test_the_committed_file_is_whole() -> None:
    # confusables.txt 17.0.0 has 6,565 mappings, one source code point each.
    assert len(ENTRIES) == 6565
    assert all(len(source) == 1 for source, _ in ENTRIES)


# --- skeleton ---------------------------------------------------------------------------

#: (source, prototype) pairs as confusables.txt 17.0.0 lists them.
KNOWN = [
    ("\u0430", "a"),  # CYRILLIC SMALL LETTER A
    ("\u0435", "e"),  # CYRILLIC SMALL LETTER IE
    ("\u043e", "o"),  # CYRILLIC SMALL LETTER O
    ("\u0440", "p"),  # CYRILLIC SMALL LETTER ER
    ("\u0441", "c"),  # CYRILLIC SMALL LETTER ES
    ("\u0456", "i"),  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
    ("\u0421", "C"),  # CYRILLIC CAPITAL LETTER ES
    ("\u0420", "P"),  # CYRILLIC CAPITAL LETTER ER
    ("\u0422", "T"),  # CYRILLIC CAPITAL LETTER TE
    ("\u03bf", "o"),  # GREEK SMALL LETTER OMICRON
    ("\u0396", "Z"),  # GREEK CAPITAL LETTER ZETA
    ("\u03a1", "P"),  # GREEK CAPITAL LETTER RHO
    ("\u2c9f", "o"),  # COPTIC SMALL LETTER O
    ("\u0585", "o"),  # ARMENIAN SMALL LETTER OH
    ("\u13aa", "A"),  # CHEROKEE LETTER GO
    ("\u13df", "C"),  # CHEROKEE LETTER TLI
    ("\ua4da", "C"),  # LISU LETTER CA
    ("\u0251", "a"),  # LATIN SMALL LETTER ALPHA
    ("\u0269", "i"),  # LATIN SMALL LETTER IOTA
    ("\u0131", "i"),  # LATIN SMALL LETTER DOTLESS I
    ("\u01c0", "l"),  # LATIN LETTER DENTAL CLICK
    ("\u217c", "l"),  # SMALL ROMAN NUMERAL FIFTY
    ("\u1d04", "c"),  # LATIN LETTER SMALL CAPITAL C
    ("\u1d0f", "o"),  # LATIN LETTER SMALL CAPITAL O
    ("\u03f2", "c"),  # GREEK LUNATE SIGMA SYMBOL
    ("\u017f", "f"),  # LATIN SMALL LETTER LONG S
    ("1", "l"),  # DIGIT ONE
    ("0", "O"),  # DIGIT ZERO
    ("|", "l"),  # VERTICAL LINE
    ("I", "l"),  # LATIN CAPITAL LETTER I
    ("m", "rn"),  # LATIN SMALL LETTER M
    ("\ufb01", "fi"),  # LATIN SMALL LIGATURE FI
]


@pytest.mark.parametrize(("source", "prototype"), KNOWN, ids=[_u(s) for s, _ in KNOWN])
def test_known_confusables_map_to_their_prototypes(source: str, prototype: str) -> None:
    assert TABLE[source] == prototype, "the committed file says otherwise"
    assert skeleton(source) == unicodedata.normalize("NFD", prototype)


def test_every_entry_maps_to_its_prototype() -> None:
    """skeleton(X) = NFD(prototype) for every source that NFD leaves alone and whose
    prototype is its own skeleton (UTS #39 §4)."""
    wrong = [
        _u(source)
        for source, prototype in ENTRIES
        if unicodedata.is_normalized("NFD", source)
        and ord(source) not in default_ignorables()
        and skeleton(prototype) == unicodedata.normalize("NFD", prototype)
        and skeleton(source) != unicodedata.normalize("NFD", prototype)
    ]
    assert wrong == []


def test_default_ignorables_vanish() -> None:
    assert skeleton("cl\u200baude\u034f\ufe0f\U000e0041") == "claude"


def test_a_default_ignorable_listed_in_confusables_vanishes_too() -> None:
    """UTS #39 §4 removes Default_Ignorable_Code_Points before mapping prototypes, so
    U+3164 HANGUL FILLER (listed in confusables.txt with the prototype U+1160, itself
    default-ignorable) must vanish like every other one."""
    assert skeleton("a\u3164b") == "ab"


def test_identity_keys_settle_on_every_code_point() -> None:
    """UTS #39's skeleton is not idempotent everywhere (a prototype's NFD can expose a mark
    that has a prototype of its own: U+01C4's caron); identity keys iterate until stable."""
    moved = [
        f"U+{point:04X}"
        for point in range(0x110000)
        if not 0xD800 <= point <= 0xDFFF
        for key in identity_keys(chr(point))
        if key not in identity_keys(key)
    ]
    assert moved == []


_CONFUSABLE_TEXT = st.text(
    st.sampled_from(sorted({c for s, p in ENTRIES for c in s + p})) | st.characters(),
    max_size=20,
)


@given(_CONFUSABLE_TEXT)
@example("\u3164")
@example("\ufe81")
@example("\u01c4")
def test_identity_keys_of_a_key_contain_it(text: str) -> None:
    for key in identity_keys(text):
        assert key in identity_keys(key)


# --- identity keys ---------------------------------------------------------------------

SAME = [
    ("claudeai", "ClaudeAI"),
    ("claudeai", "\uff23\uff4c\uff41\uff55\uff44\uff45\uff21\uff29"),  # fullwidth
    ("claudeai", "cl\u0430udeai"),  # Cyrillic a
    ("Cursor", "Curs\u2c9fr"),  # Coptic o
    ("ChatGPT", "ChatG\u0420\u0422"),  # Cyrillic Er, Te
    ("ChatGPT", "\U0001d402\U0001d421\U0001d41a\U0001d42d\U0001d406\U0001d40f\U0001d413"),
    ("admin", "ADMIN"),
    ("admin", "Adm\u0269n"),  # Latin iota
    ("admin", "\u0430dm\u0456n"),  # Cyrillic a and i
    ("Claude Code", "Claude\u00a0\u00a0Code"),  # whitespace collapsed
    ("Claude", "C\u217cau\u217ee"),  # small roman numerals
]


@pytest.mark.parametrize(("a", "b"), SAME, ids=[repr(b) for _, b in SAME])
def test_look_alikes_share_a_key(a: str, b: str) -> None:
    assert _confusable(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("claude", "claudette"), ("claudeai", "claude ai"), ("Cursor", "Cursur"), ("zed", "zeb")],
)
def test_different_names_share_no_key(a: str, b: str) -> None:
    assert not _confusable(a, b)


def test_every_ascii_prototype_is_reached_by_its_sources() -> None:
    """A character that confusables.txt maps to an ASCII letter or digit must key as that
    letter: NFKC, applied first, must not send it somewhere else."""
    lost = [
        f"{_u(source)} {unicodedata.name(source, '')} (prototype {prototype!r}, keys "
        f"{identity_keys(source)})"
        for source, prototype in ENTRIES
        if len(prototype) == 1
        and prototype in string.ascii_letters + string.digits
        and unicodedata.category(source) not in ("Cn", "Co")
        and not _confusable(source, prototype)
    ]
    assert lost == []


_LATIN_LOOK_ALIKES = {
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "j": "\u0458",
    "o": "\u043e",
    "p": "\u0440",
    "s": "\u0455",
    "x": "\u0445",
    "y": "\u0443",
}


@given(st.text(st.sampled_from(string.ascii_letters + " -"), min_size=1, max_size=30), st.data())
def test_substituting_look_alikes_keeps_a_key(name: str, draw: st.DataObject) -> None:
    spoofed = "".join(
        _LATIN_LOOK_ALIKES[c] if c in _LATIN_LOOK_ALIKES and draw.draw(st.booleans()) else c
        for c in name
    )
    fullwidth = "".join(
        chr(ord(c) + 0xFEE0) if c in string.ascii_letters and draw.draw(st.booleans()) else c
        for c in name
    )
    assert _confusable(name, spoofed)
    assert _confusable(name, fullwidth)


@given(st.text(st.characters(exclude_categories=()), max_size=40))
def test_identity_keys_never_raise(text: str) -> None:
    keys = identity_keys(text)
    assert 1 <= len(keys) <= 2
    assert all(isinstance(key, str) for key in keys)


@given(_CONFUSABLE_TEXT)
@example("%")
@example("\u2030")
@example("\u23e8")
def test_identity_keys_are_stable(text: str) -> None:
    """A key is its own key: computing keys again changes nothing, so comparing keys is
    the same whether a name or its key is compared."""
    keys = identity_keys(text)
    assert identity_keys(text) == keys
    for key in keys:
        assert key in identity_keys(key), (text, key, identity_keys(key))
