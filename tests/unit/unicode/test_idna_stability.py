"""The committed table of IDNA-unstable code points (gateway.unicode.idna_stability)."""

from __future__ import annotations

import pytest

from gateway.unicode.data import IDNA_UNSTABLE, text
from gateway.unicode.idna_stability import (
    DEVIATIONS,
    compute,
    first_unstable,
    is_unstable,
    render,
    unstable_points,
)


def test_the_committed_table_is_what_the_installed_libraries_compute() -> None:
    """A new ``idna`` release (other UTS #46 tables) or Python (other Unicode data) must be
    looked at: regenerate with ``.venv/bin/python -m gateway.unicode.idna_stability``."""
    assert text(IDNA_UNSTABLE) == render(compute())


@pytest.mark.parametrize(
    ("point", "why"),
    [
        (0x00DF, "deviation: sharp s"),
        (0x03C2, "deviation: final sigma"),
        (0x200C, "deviation: ZWNJ"),
        (0x200D, "deviation: ZWJ"),
        (0x1E9E, "capital sharp s: ss before Unicode 16, sharp s after"),
        (0x04C0, "palochka: its small letter is newer than Unicode 3.2"),
        (0x10A0, "Georgian capital: its small letter is newer than Unicode 3.2"),
        (0x10C5, "Georgian capital"),
        (0x2132, "turned capital F"),
        (0x2183, "reversed roman numeral one hundred"),
        (0x2F868, "CJK compatibility ideograph with a corrected decomposition"),
        (0x13A0, "Cherokee capital: case folding maps it differently from UTS #46"),
    ],
)
def test_known_unstable_code_points(point: int, why: str) -> None:
    assert is_unstable(point), why
    assert point in unstable_points()
    assert first_unstable(f"ab{chr(point)}c") == 2


@pytest.mark.parametrize(
    "char", ["\u00fc", "\u00e9", "\u0430", "\u4e2d", "\u0915", "\u3002", "\uff21", "\u05d0"]
)
def test_ordinary_letters_and_dots_are_stable(char: str) -> None:
    assert not is_unstable(ord(char))
    assert first_unstable(f"ab{char}") is None


def test_every_deviation_is_in_the_table() -> None:
    assert unstable_points() >= DEVIATIONS
