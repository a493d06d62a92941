"""Default_Ignorable_Code_Point: characters that render as nothing (Unicode §5.21).

``claude\\u034fai`` (U+034F COMBINING GRAPHEME JOINER) is shown as "claudeai" on a consent
screen; so are names with a zero-width space, a variation selector, a Mongolian free
variation selector, a Khmer inherent vowel or a Hangul filler.  The property names every
such code point, including ones reserved for future use, so the set is stable across
Unicode versions.  A client name carrying any of them is refused, not cleaned: what the
user reads would not be what was registered.
"""

from __future__ import annotations

import functools
import re

from gateway.unicode.data import DEFAULT_IGNORABLE, code_points, records


@functools.cache
def default_ignorables() -> frozenset[int]:
    """Every Default_Ignorable_Code_Point, from the committed DerivedCoreProperties."""
    return frozenset(
        point
        for fields in records(DEFAULT_IGNORABLE)
        if fields[1] == "Default_Ignorable_Code_Point"
        for point in code_points(fields[0])
    )


def ranges(points: frozenset[int]) -> list[tuple[int, int]]:
    """``points`` as sorted, maximal ``(first, last)`` runs."""
    out: list[tuple[int, int]] = []
    for point in sorted(points):
        if out and out[-1][1] == point - 1:
            out[-1] = (out[-1][0], point)
        else:
            out.append((point, point))
    return out


def character_class(points: frozenset[int]) -> str:
    """A regular-expression character class matching exactly ``points``."""
    parts = [
        re.escape(chr(first))
        if first == last
        else f"{re.escape(chr(first))}-{re.escape(chr(last))}"
        for first, last in ranges(points)
    ]
    return "[" + "".join(parts) + "]"


@functools.cache
def _pattern() -> re.Pattern[str]:
    return re.compile(character_class(default_ignorables()))


def first_default_ignorable(text: str) -> int | None:
    """Index of the first Default_Ignorable_Code_Point in ``text``, if any (a regular
    expression over the code point ranges: the scan runs in C)."""
    if text.isascii():
        return None
    found = _pattern().search(text)
    return None if found is None else found.start()
