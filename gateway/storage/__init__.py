"""Where shared state lives: ``memory://`` for one process, Redis for several replicas.

A small interface that client records, rate limits and initial access tokens build on:
values with optional expiry, maps (name -> value), capped counters, and sliding-window
counters (:mod:`gateway.storage.windows`).  Every operation that must hold across replicas
is one atomic step of the store (a Lua script on Redis), so two replicas can never both
take the last unit of a limit.  Errors of the store are :class:`StorageError`, so callers
decide once whether to fail closed or open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.storage.errors import StorageError
from gateway.storage.memory import MemoryStorage
from gateway.storage.redis import RedisStorage, redis_client
from gateway.storage.windows import WindowCheck, WindowResult

__all__ = [
    "MemoryStorage",
    "RedisStorage",
    "Storage",
    "StorageError",
    "WindowCheck",
    "WindowResult",
    "open_storage",
    "redis_client",
]


class Storage(Protocol):
    uri: str

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def map_put_new(self, key: str, field: str, value: bytes) -> bool:
        """Set ``field`` of map ``key`` unless it is set; whether it was set now."""

    async def map_get_all(self, key: str) -> dict[str, bytes]: ...

    async def map_delete(self, key: str, field: str) -> bool:
        """Remove ``field``; whether it was there."""

    async def map_get(self, key: str, field: str) -> bytes | None: ...

    async def map_set(self, key: str, field: str, value: bytes) -> None: ...

    async def map_swap(
        self, key: str, field: str, expected: bytes | None, value: bytes | None
    ) -> bool:
        """Compare and set one field: when it holds ``expected`` (``None``: absent), make it
        ``value`` (``None``: remove it); whether it did.  Status changes of a client go
        through this, so an approval and a cleanup racing on two replicas cannot both win."""

    async def set_new(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` unless it exists (``SET NX PX``); whether it did: locks and claims."""

    async def extend_if(self, key: str, value: bytes, ttl: float) -> bool:
        """Renew ``key``'s expiry while it still holds ``value`` (a lock still ours)."""

    async def delete_if(self, key: str, value: bytes) -> bool:
        """Delete ``key`` while it still holds ``value`` (release a lock we hold)."""

    async def counter_get(self, key: str) -> int: ...

    async def counter_set(self, key: str, value: int) -> None:
        """Overwrite a counter (reconciling it with what it counts)."""

    async def counter_reserve(self, key: str, cap: int | None) -> int | None:
        """Add one unless the counter is already at ``cap``: the new value, or ``None``."""

    async def counter_release(self, key: str) -> None:
        """Give one back (never below zero)."""

    async def counters_reserve(self, keys: Sequence[str], caps: Sequence[int | None]) -> int | None:
        """Add one to every counter unless one is at its cap: ``None`` when all were
        counted, else the index of the first full one (and nothing is counted).  One atomic
        step (quotas: a vendor's and a tenant's counter at once)."""

    async def counters_release(self, keys: Sequence[str]) -> None:
        """Give one back to each (never below zero)."""

    async def windows_acquire(self, checks: Sequence[WindowCheck], now: float) -> WindowResult:
        """All of ``checks`` admit one more request: count it in those that count, at once;
        any does not: count nothing.  One atomic step."""

    async def windows_release(self, keys: Sequence[str]) -> None:
        """Give back what :meth:`windows_acquire` counted (``WindowResult.counted``)."""

    async def close(self) -> None: ...


def open_storage(uri: str, *, on_error: Callable[[], None] | None = None) -> Storage:
    """The store named by the config's ``storage`` URI (already validated); ``on_error`` is
    called on every failed operation (the metrics count them)."""
    if uri.lower().startswith("memory://"):
        return MemoryStorage(uri)
    storage = RedisStorage(uri)
    storage.on_error = on_error
    return storage
