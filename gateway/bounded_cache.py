"""Remembering a pure function of client-supplied text, for short texts only.

The keys of rate-limit and quota counters and the identity keys of client names are
computed from what a client sent, and the same few values repeat (one IP, one vendor name
for every registration of an MCP client), so they are worth remembering.  A cache keyed by
arbitrary client text can hold a lot, though: NFKC turns a 2,000-character name of
U+FDFA into a 30,000-character key, and 4,096 such entries held about half a gigabyte in
one measurement.  So only calls whose text argument is short are remembered; a long one
is computed every time, which costs time only to whoever sends it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

#: The longest text whose results are remembered (4,096 of them per function).
LONGEST = 256

_R = TypeVar("_R")


def short_text_cache(function: Callable[..., _R]) -> Callable[..., _R]:
    """Cache ``function`` (pure, positional arguments, the client's text last) while that
    last argument is at most :data:`LONGEST` characters long, or ``None``."""
    cached = functools.lru_cache(maxsize=4096)(function)

    @functools.wraps(function)
    def call(*args: Any) -> _R:
        text = args[-1]
        if text is None or len(text) <= LONGEST:
            return cached(*args)
        return function(*args)

    call.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return call
