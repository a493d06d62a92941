"""Sliding-window counters: the arithmetic both stores share (memory and the Redis script).

Why this window: a *fixed* window lets twice the limit through around each boundary (all of
one window's allowance at its end, all of the next one's at its start); a *moving* window
log (one entry per request) is exact but stores every request for a whole window, which for
``1000/day`` per vendor is a thousand entries per key.  The *sliding window counter* (the
`limits` library's ``sliding-window-counter``, Cloudflare's rate limiter) keeps two counters
per key, this window's and the previous one's, and weighs the previous one by how much of it
still overlaps the sliding window: ``previous * (1 - elapsed / window) + current``.  Constant
memory, one round trip, and no boundary burst; the price is assuming the previous window's
requests were spread evenly.

Window numbers come from the gateway's clock (``floor(now / window)``) so every key a check
touches is named before the Redis script runs (Redis Cluster needs declared keys); replicas'
clocks only need to agree to well within a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One window of one rule for one request: ``limit`` per ``seconds`` on ``key``."""

    key: str
    limit: int
    seconds: int
    #: Whether an allowed request is counted in this window (attempts always; registrations
    #: only when the policy allowed the request).
    count: bool = True


@dataclass(frozen=True, slots=True)
class WindowState:
    """What a check saw: the previous and current counters, and how far into the window."""

    previous: int
    current: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class WindowResult:
    allowed: bool
    #: One state per check, in order.
    states: tuple[WindowState, ...]
    #: The counters incremented (to give back if the request does not count after all).
    counted: tuple[str, ...] = ()


def window_number(now: float, seconds: int) -> int:
    return math.floor(now / seconds)


def counter_keys(check: WindowCheck, now: float) -> tuple[str, str]:
    """The current and previous window's counter keys of ``check`` at ``now``."""
    number = window_number(now, check.seconds)
    return f"{check.key}:{number}", f"{check.key}:{number - 1}"


def elapsed_in_window(now: float, seconds: int) -> float:
    return now - window_number(now, seconds) * seconds


def weighted(state: WindowState, seconds: int) -> float:
    """The sliding window's estimated count."""
    return state.previous * (seconds - state.elapsed) / seconds + state.current


def admits(state: WindowState, check: WindowCheck) -> bool:
    """Whether one more request fits (the Redis script tests the same inequality)."""
    return weighted(state, check.seconds) + 1 <= check.limit


def retry_after(state: WindowState, check: WindowCheck) -> int:
    """Whole seconds until one more request fits, if nothing else arrives meanwhile."""
    w, limit = check.seconds, check.limit
    if state.current + 1 > limit:
        # Not before the next window, where this one's count becomes the weighed one.
        later = w * (1 - (limit - 1) / state.current) if state.current else 0.0
        wait = (w - state.elapsed) + max(0.0, later)
    elif state.previous:
        wait = w * (1 - (limit - 1 - state.current) / state.previous) - state.elapsed
    else:
        wait = 0.0
    return max(1, math.ceil(wait - 1e-9))


def expiry_seconds(check: WindowCheck) -> int:
    """A counter is read during its own window and the next one."""
    return 2 * check.seconds + 1
