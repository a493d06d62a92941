"""Default_Ignorable_Code_Point from the committed UCD excerpt (gateway.unicode.ignorable).

The committed file is read here a second time, independently of ``gateway.unicode.data``,
so a parsing slip in the gateway cannot hide a code point from both.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.unicode import data
from gateway.unicode.ignorable import default_ignorables, first_default_ignorable

_LINE_RE = re.compile(
    r"^([0-9A-F]{4,6})(?:\.\.([0-9A-F]{4,6}))?\s*;\s*Default_Ignorable_Code_Point\s*(?:#|$)"
)


def _committed() -> frozenset[int]:
    text = data.path(data.DEFAULT_IGNORABLE).read_text(encoding="utf-8-sig")
    points: set[int] = set()
    for line in text.splitlines():
        match = _LINE_RE.match(line)
        if match:
            first = int(match.group(1), 16)
            last = int(match.group(2) or match.group(1), 16)
            points.update(range(first, last + 1))
    return frozenset(points)


COMMITTED = _committed()

#: Prepended_Concatenation_Mark (PropList): format characters that must stay visible.
PREPENDED_CONCATENATION_MARKS = frozenset(
    [*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD]
)


# --- the data ---------------------------------------------------------------------------


def test_the_committed_file_states_unicode_17() -> None:
    assert data.version(data.DEFAULT_IGNORABLE) == "17.0.0"
    first_line = data.path(data.DEFAULT_IGNORABLE).read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# DerivedCoreProperties-17.0.0.txt"


def test_the_gateway_reads_exactly_the_committed_code_points() -> None:
    assert default_ignorables() == COMMITTED


def test_the_committed_set_has_the_size_of_unicode_17() -> None:
    # 4,174 code points since Unicode 14 (U+180F was the last addition); 4,096 of them are
    # the reserved block E0000..E0FFF.
    assert len(COMMITTED) == 4174
    assert set(range(0xE0000, 0xE1000)) <= COMMITTED


@pytest.mark.parametrize(
    "point",
    [
        0x00AD,  # SOFT HYPHEN
        0x034F,  # COMBINING GRAPHEME JOINER
        0x061C,  # ARABIC LETTER MARK
        0x115F,  # HANGUL CHOSEONG FILLER
        0x1160,  # HANGUL JUNGSEONG FILLER
        0x17B4,  # KHMER VOWEL INHERENT AQ
        0x17B5,  # KHMER VOWEL INHERENT AA
        0x180B,  # MONGOLIAN FREE VARIATION SELECTOR ONE
        0x180E,  # MONGOLIAN VOWEL SEPARATOR
        0x180F,  # MONGOLIAN FREE VARIATION SELECTOR FOUR (Unicode 14)
        0x200B,  # ZERO WIDTH SPACE
        0x200C,  # ZERO WIDTH NON-JOINER
        0x200D,  # ZERO WIDTH JOINER
        0x200E,  # LEFT-TO-RIGHT MARK
        0x200F,  # RIGHT-TO-LEFT MARK
        0x202A,  # LEFT-TO-RIGHT EMBEDDING
        0x202E,  # RIGHT-TO-LEFT OVERRIDE
        0x2060,  # WORD JOINER
        0x2064,  # INVISIBLE PLUS
        0x2065,  # reserved
        0x2066,  # LEFT-TO-RIGHT ISOLATE
        0x206F,  # NOMINAL DIGIT SHAPES
        0x3164,  # HANGUL FILLER
        0xFE00,  # VARIATION SELECTOR-1
        0xFE0F,  # VARIATION SELECTOR-16
        0xFEFF,  # ZERO WIDTH NO-BREAK SPACE
        0xFFA0,  # HALFWIDTH HANGUL FILLER
        0xFFF0,  # reserved
        0xFFF8,  # reserved
        0x1BCA0,  # SHORTHAND FORMAT LETTER OVERLAP
        0x1BCA3,  # SHORTHAND FORMAT UP STEP
        0x1D173,  # MUSICAL SYMBOL BEGIN BEAM
        0x1D17A,  # MUSICAL SYMBOL END PHRASE
        0xE0000,  # reserved
        0xE0001,  # LANGUAGE TAG
        0xE0020,  # TAG SPACE
        0xE007F,  # CANCEL TAG
        0xE0100,  # VARIATION SELECTOR-17
        0xE01EF,  # VARIATION SELECTOR-256
        0xE0FFF,  # reserved, the last one
    ],
    ids=lambda point: f"U+{point:04X}",
)
def test_known_default_ignorables_are_committed(point: int) -> None:
    assert point in COMMITTED


def test_the_derivation_holds_for_python_s_unicode_14() -> None:
    """DerivedCoreProperties: Other_Default_Ignorable_Code_Point + Cf + Variation_Selector
    - White_Space - FFF9..FFFB - 13430..13440 - Prepended_Concatenation_Mark.  Every format
    character and variation selector Python's database knows must be in the committed set,
    and none of the exclusions."""
    missing = []
    for point in range(0x110000):
        char = chr(point)
        excluded = (
            char.isspace()
            or 0xFFF9 <= point <= 0xFFFB
            or 0x13430 <= point <= 0x13440
            or point in PREPENDED_CONCATENATION_MARKS
        )
        format_or_selector = unicodedata.category(char) == "Cf" or "VARIATION SELECTOR" in (
            unicodedata.name(char, "")
        )
        if excluded:
            assert point not in COMMITTED, f"U+{point:04X} is excluded by the derivation"
        elif format_or_selector and point not in COMMITTED:
            missing.append(f"U+{point:04X}")
    assert missing == []


# --- first_default_ignorable ---------------------------------------------------------------


def test_every_committed_code_point_is_found() -> None:
    missed = [
        f"U+{point:04X}"
        for point in sorted(COMMITTED)
        if first_default_ignorable(f"ab{chr(point)}c") != 2
        or first_default_ignorable(chr(point)) != 0
    ]
    assert missed == []


def test_the_first_of_several_is_reported() -> None:
    assert first_default_ignorable("cl\u00e4ude\u200bai\u034f") == 6
    assert first_default_ignorable("\ufe0f\u200b") == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "claudeai",
        "Claude Desktop",
        "".join(chr(point) for point in range(0x80)),  # ASCII controls are not ignorable
        "caf\u00e9 \u00e0 Paris",
        "Cl\u0430ude",  # a Cyrillic letter is visible
        "\u00a0\u2000\u2003\u200a\u202f\u205f\u3000",  # spaces are White_Space, not ignorable
        "\u2028\u2029",  # separators are White_Space
        "\ufff9\ufffa\ufffb",  # interlinear annotation characters
        "\U00013430\U00013438",  # Egyptian hieroglyph format controls
        "\u0600\u06dd\u070f\u08e2\U000110bd",  # prepended concatenation marks
        "\u2800",  # BRAILLE PATTERN BLANK is a symbol
        "\u0301\u0338\u20dd",  # ordinary combining marks
    ],
)
def test_visible_text_has_no_ignorable(text: str) -> None:
    assert first_default_ignorable(text) is None


@given(st.text(max_size=30))
@example("claude\u034fai")
@example("\U000e0063laude")
def test_the_index_is_the_first_committed_code_point(text: str) -> None:
    expected = next((i for i, char in enumerate(text) if ord(char) in COMMITTED), None)
    assert first_default_ignorable(text) == expected


@given(st.text(st.characters(exclude_categories=()), max_size=30))
def test_it_never_raises(text: str) -> None:
    index = first_default_ignorable(text)
    assert index is None or ord(text[index]) in COMMITTED
