"""Deadlines sharing timers: they fire (never early, at most one slot late), a
cancellation from elsewhere stays one, and nothing is left behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.upstream.deadline import Deadlines


async def test_a_deadline_fires_as_a_timeout_within_one_slot() -> None:
    deadlines = Deadlines(granularity=0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with deadlines.after(0.1):
            await asyncio.sleep(5)
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 0.3, elapsed
    assert len(deadlines) == 0


async def test_work_that_ends_in_time_is_untouched_and_leaves_nothing() -> None:
    deadlines = Deadlines()
    for _ in range(100):
        with deadlines.after(1.0) as deadline:
            await asyncio.sleep(0)
    assert deadline is not None
    assert len(deadlines) == 0
    await asyncio.sleep(0)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()

    async def work() -> None:
        with deadlines.after(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(work())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


async def test_reschedule_lifts_and_sets_the_deadline() -> None:
    deadlines = Deadlines(granularity=0.02)
    with deadlines.after(0.05) as deadline:
        deadline.reschedule(None)
        await asyncio.sleep(0.1)  # lifted: not cut short
    with pytest.raises(TimeoutError):
        with deadlines.after(None) as deadline:
            deadline.reschedule_in(0.05)
            await asyncio.sleep(5)


class CountingLoop:
    """The loop's clock and a count of the timers scheduled on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers = 0

    def time(self) -> float:
        return self.loop.time()

    def is_closed(self) -> bool:
        return False

    def call_at(self, when: float, callback, *args):
        self.timers += 1
        return self.loop.call_at(when, callback, *args)


async def test_many_deadlines_share_one_timer_per_slot() -> None:
    deadlines = Deadlines(granularity=1.0)
    counting = CountingLoop(asyncio.get_running_loop())
    deadlines._loop = counting  # type: ignore[assignment]
    entered = [deadlines.after(30).__enter__() for _ in range(50)]
    assert len(deadlines) == 50
    assert counting.timers <= 2  # one slot, or two when the clock crossed a slot's edge
    for deadline in entered:
        deadline.__exit__(None, None, None)
    assert len(deadlines) == 0
