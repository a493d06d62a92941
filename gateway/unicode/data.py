"""Reading the committed Unicode data files (UCD / UTS #39 text format).

The files are the Unicode Consortium's own, committed verbatim (or, for
``DerivedCoreProperties``, the one section the gateway reads, verbatim): they say their
version in their first lines, and :func:`version` reads it back so tests and
``dcr-gateway check`` can report which data a decision used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

CONFUSABLES = "confusables.txt"
DEFAULT_IGNORABLE = "DerivedCoreProperties-DefaultIgnorable-17.0.0.txt"
IDNA_UNSTABLE = "idna-unstable.txt"

_VERSION_RE = re.compile(r"^#\s*(?:Version:\s*|\S+-)(\d+\.\d+\.\d+)")


def path(name: str) -> Path:
    return Path(str(resources.files("gateway") / "data" / "unicode" / name))


@functools.cache
def text(name: str) -> str:
    return path(name).read_text(encoding="utf-8-sig")


def version(name: str) -> str:
    """The Unicode version a data file states in its header (``17.0.0``)."""
    for line in text(name).splitlines()[:12]:
        match = _VERSION_RE.match(line)
        if match:
            return match.group(1)
    raise ValueError(f"{name} states no Unicode version")


def records(name: str) -> Iterator[list[str]]:
    """The ``;``-separated fields of every data line, comments and blanks skipped."""
    for line in text(name).splitlines():
        data = line.split("#", 1)[0].strip()
        if data:
            yield [field.strip() for field in data.split(";")]


def code_points(field: str) -> range:
    """``00AD`` or ``115F..1160`` as a range of code points."""
    first, _, last = field.partition("..")
    return range(int(first, 16), int(last or first, 16) + 1)
