"""Deadlines that share their timers: one per time slot, not one per exchange.

``asyncio.timeout`` schedules a timer for every exchange and cancels it when the exchange
ends, thousands of times a second on the pass-through path; each costs a heap push, a
cancelled handle to sweep, and Python-level bookkeeping, more than the rest of the
gateway's own per-request work.  Here deadlines are grouped into slots of
:data:`GRANULARITY` seconds: the first deadline of a slot schedules its one timer, the
others only join a set, and an exchange that ends leaves it again.  A deadline so fires
at most one slot late (50 ms by default), never early.

Semantics are those of ``asyncio.timeout``: when the deadline passes, the task is
cancelled, and the ``CancelledError`` that comes out of the ``with`` block becomes a
``TimeoutError``; a cancellation from elsewhere stays a cancellation.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

#: Width of a slot, in seconds: how late a deadline may fire.
GRANULARITY = 0.05


class Deadlines:
    """The slots of one event loop."""

    __slots__ = ("_granularity", "_loop", "_slots")

    def __init__(self, granularity: float = GRANULARITY) -> None:
        self._granularity = granularity
        self._slots: dict[int, set[Deadline]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def after(self, delay: float | None) -> Deadline:
        """A deadline ``delay`` seconds after it is entered (``None``: none, until
        :meth:`Deadline.reschedule`)."""
        return Deadline(self, delay)

    def time(self) -> float:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def _add(self, deadline: Deadline, when: float) -> None:
        slot = math.ceil(when / self._granularity)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            loop = self._loop
            if loop is None or loop.is_closed():
                loop = self._loop = asyncio.get_running_loop()
            loop.call_at(slot * self._granularity, self._fire, slot)
        members.add(deadline)
        deadline._slot = slot

    def _remove(self, deadline: Deadline) -> None:
        members = self._slots.get(deadline._slot)  # type: ignore[arg-type]
        if members is not None:
            members.discard(deadline)
        deadline._slot = None

    def _fire(self, slot: int) -> None:
        for deadline in self._slots.pop(slot, ()):
            deadline._expire()

    def __len__(self) -> int:
        """Deadlines pending (for tests)."""
        return sum(len(members) for members in self._slots.values())


class Deadline:
    """One exchange's deadline: ``with deadlines.after(seconds) as deadline`` (a plain
    context manager: entering and leaving need no awaiting, and are cheaper so)."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_owner", "_slot", "_task")

    def __init__(self, owner: Deadlines, delay: float | None) -> None:
        self._owner = owner
        self._delay = delay
        self._slot: int | None = None
        self._expired = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._delay is not None:
            owner = self._owner
            owner._add(self, owner.time() + self._delay)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._slot is not None:
            self._owner._remove(self)
        if self._expired:
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def reschedule(self, when: float | None) -> None:
        """Move the deadline to ``when`` (the loop's clock), or lift it (``None``)."""
        if self._expired:
            return
        if self._slot is not None:
            self._owner._remove(self)
        if when is not None:
            self._owner._add(self, when)

    def reschedule_in(self, delay: float) -> None:
        """Move the deadline to ``delay`` seconds from now."""
        self.reschedule(self._owner.time() + delay)

    def _expire(self) -> None:
        self._slot = None
        self._expired = True
        assert self._task is not None
        self._task.cancel()
