"""The sliding-window arithmetic both stores share (gateway.storage.windows).

The stores only keep two counters per key; everything a limit means (how many more fit,
when the next one fits) is this arithmetic, so it is tested on its own: worked examples
that can be checked by hand, and properties over every state.  ``retry_after`` is what a
refused client is told (``Retry-After``); a value that is too short makes clients retry
into another 429, one that is too long keeps them out longer than the policy says.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.storage.windows import (
    WindowCheck,
    WindowState,
    admits,
    counter_keys,
    elapsed_in_window,
    expiry_seconds,
    retry_after,
    weighted,
    window_number,
)

MINUTE, HOUR, DAY = 60, 3600, 86400


def check(limit: int, seconds: int = MINUTE) -> WindowCheck:
    return WindowCheck("rl:k", limit, seconds)


# --------------------------------------------------------------------------- examples


def test_window_numbers_and_keys_come_from_the_clock() -> None:
    """Every replica names the same counters for the same instant: ``floor(now / w)``."""
    assert window_number(119.999, 60) == 1
    assert window_number(120.0, 60) == 2
    assert counter_keys(check(5), 125.5) == ("rl:k:2", "rl:k:1")
    assert elapsed_in_window(125.5, 60) == pytest.approx(5.5)
    assert elapsed_in_window(120.0, 60) == 0.0


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "expected"),
    [
        (10, 2, 15.0, 10 * 45 / 60 + 2),  # three quarters of the previous window overlap
        (10, 2, 0.0, 12.0),  # at the boundary the previous window counts in full
        (0, 7, 59.0, 7.0),  # without a previous window it is the plain count
        (60, 0, 59.0, 1.0),  # one second of a full previous window still overlaps
    ],
)
def test_weighted_count(previous: int, current: int, elapsed: float, expected: float) -> None:
    """``previous * (1 - elapsed / window) + current``: the previous window's requests are
    assumed spread evenly, and only the part still inside the sliding window counts."""
    assert weighted(WindowState(previous, current, elapsed), MINUTE) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "limit", "fits"),
    [
        (0, 4, 30.0, 5, True),  # the fifth of five fits
        (0, 5, 30.0, 5, False),  # a sixth does not
        (10, 0, 30.0, 5, False),  # half of 10 overlap: 5 + 1 > 5
        (10, 0, 36.0, 5, True),  # 40% of 10 overlap: 4 + 1 <= 5, exactly the limit
        (10, 0, 35.9, 5, False),
        (1, 0, 0.0, 1, False),  # limit 1: the one from a moment ago still counts
    ],
)
def test_admits(previous: int, current: int, elapsed: float, limit: int, fits: bool) -> None:
    """One more fits when the weighted count plus it stays within the limit (``<=``)."""
    assert admits(WindowState(previous, current, elapsed), check(limit)) is fits


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "limit", "wait"),
    [
        # Current window full: wait for the next one, then until this one's count, weighed,
        # leaves room: 40 s to the boundary, then 60 * (1 - 4/5) = 12 s.
        (0, 5, 20.0, 5, 52),
        # Limit 1: nothing fits until this window's one request has slid out entirely.
        (0, 1, 10.0, 1, 110),
        # The previous window weighs: 10 * (60 - e) / 60 + 1 <= 5 from e = 36.
        (10, 0, 0.0, 5, 36),
        (10, 0, 30.0, 5, 6),
        (10, 3, 0.0, 5, 54),  # 10 * (60 - e) / 60 + 4 <= 5 from e = 54
        # A fraction of a second is rounded up to a whole one.
        (10, 0, 35.5, 5, 1),
        # Already fits: never less than 1 s (RFC 9110 delay-seconds, and a 429 says wait).
        (0, 0, 0.0, 5, 1),
    ],
)
def test_retry_after_examples(
    previous: int, current: int, elapsed: float, limit: int, wait: int
) -> None:
    assert retry_after(WindowState(previous, current, elapsed), check(limit)) == wait


def test_expiry_outlives_the_window_after_next_begins() -> None:
    """A counter is read as "current" during its window and as "previous" during the next,
    so it must live two windows from its last write (plus a second for rounding)."""
    assert expiry_seconds(check(5, MINUTE)) == 121
    assert expiry_seconds(check(5, DAY)) == 2 * DAY + 1


# --------------------------------------------------------------------------- properties


def state_at(counts: dict[int, int], now: float, seconds: int) -> WindowState:
    """What a store holding ``counts`` (window number -> count) and nothing else shows a
    check at ``now``: exactly how MemoryStorage and the Redis script read it."""
    number = window_number(now, seconds)
    return WindowState(
        counts.get(number - 1, 0), counts.get(number, 0), elapsed_in_window(now, seconds)
    )


windows = st.one_of(
    st.sampled_from([1, 2, 10, MINUTE, 15 * MINUTE, HOUR, DAY, 7 * DAY, 31 * DAY]),
    st.integers(1, 31 * DAY),
)
limits_ = st.integers(1, 1000)
# The gateway's clock: epoch seconds now and for decades, with sub-second parts.
instants = st.one_of(
    st.floats(1.6e9, 2.5e9, allow_nan=False, allow_infinity=False),
    st.integers(1_600_000_000, 2_500_000_000).map(float),
)


@st.composite
def situations(draw: st.DrawFn) -> tuple[dict[int, int], float, WindowCheck]:
    """A check, an instant, and what the store counted in the current and previous window
    (anything from empty to three times the limit)."""
    seconds = draw(windows)
    limit = draw(limits_)
    now = draw(instants)
    number = window_number(now, seconds)
    counts = {
        number - 1: draw(st.integers(0, 3 * limit)),
        number: draw(st.integers(0, 3 * limit)),
    }
    return counts, now, WindowCheck("rl:k", limit, seconds)


@given(situations())
def test_waiting_retry_after_seconds_admits(situation) -> None:
    """A client told ``Retry-After: s`` that waits ``s`` seconds, with no other request
    arriving meanwhile, is admitted."""
    counts, now, limit = situation
    state = state_at(counts, now, limit.seconds)
    wait = retry_after(state, limit)
    assert wait >= 1
    assert admits(state_at(counts, now + wait, limit.seconds), limit), (state, wait)


@given(situations())
def test_one_second_less_than_retry_after_does_not_admit(situation) -> None:
    """``Retry-After`` is the shortest whole number of seconds that works: when it is more
    than 1 s, a client waiting one second less is still refused (so it is not longer than
    the policy demands)."""
    counts, now, limit = situation
    state = state_at(counts, now, limit.seconds)
    wait = retry_after(state, limit)
    assume(wait > 1)
    assert not admits(state_at(counts, now + wait - 1, limit.seconds), limit), (state, wait)


@given(situations(), st.floats(0, 1e7, allow_nan=False))
def test_without_new_requests_the_count_never_rises(situation, later: float) -> None:
    """The weighted count only falls as time passes (continuous at window boundaries: the
    current window becomes the previous one at full weight), so "admitted after s seconds"
    stays true for every longer wait; ``retry_after`` relies on it."""
    counts, now, limit = situation
    before = weighted(state_at(counts, now, limit.seconds), limit.seconds)
    after = weighted(state_at(counts, now + later, limit.seconds), limit.seconds)
    assert after <= before + 1e-6 * max(1.0, before)


@given(situations())
def test_refused_exactly_when_the_weighted_count_is_full(situation) -> None:
    """``admits`` is the inequality of the Redis script: weighted + 1 <= limit."""
    counts, now, limit = situation
    state = state_at(counts, now, limit.seconds)
    assert admits(state, limit) is (weighted(state, limit.seconds) + 1 <= limit.limit)
    if state.current >= limit.limit:
        assert not admits(state, limit)  # a full current window never admits
    if state.previous == 0:
        assert admits(state, limit) is (state.current < limit.limit)


@given(windows, instants)
def test_a_counter_lives_as_long_as_it_is_read(seconds: int, now: float) -> None:
    """A counter written at ``now`` (in its own window) is read until its next window ends;
    its expiry, counted from ``now``, must not come before that."""
    number = window_number(now, seconds)
    read_until = (number + 2) * seconds
    limit = WindowCheck("rl:k", 1, seconds)
    assert now + expiry_seconds(limit) > read_until
    # ... and it is not kept much longer than that: one window and a second at most extra.
    assert now + expiry_seconds(limit) <= read_until + seconds + 1


@given(
    st.integers(1, 100),
    st.integers(0, 300),
    st.floats(0, 1, exclude_max=True),
)
def test_retry_after_never_exceeds_two_windows(limit: int, current: int, fraction: float) -> None:
    """Whatever the counts, the wait is bounded: by the end of the next window nothing of
    this one is left, so ``retry_after`` is at most two windows."""
    seconds = HOUR
    state = WindowState(0, current, fraction * seconds)
    assert retry_after(state, WindowCheck("rl:k", limit, seconds)) <= math.ceil(2 * seconds)
