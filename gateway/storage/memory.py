"""State inside this process: always reachable, lost on restart.

Every operation runs without awaiting anything, so on one event loop it is as atomic as
the Redis scripts are across replicas.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.storage.windows import (
    WindowCheck,
    WindowResult,
    WindowState,
    admits,
    counter_keys,
    elapsed_in_window,
    expiry_seconds,
)


class MemoryStorage:
    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._maps: dict[str, dict[str, bytes]] = {}
        self._counters: dict[str, int] = {}
        #: Window counters: key -> (count, expiry on the wall clock the windows use).
        self._windows: dict[str, tuple[int, float]] = {}

    async def ping(self) -> None:
        return None

    async def get(self, key: str) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._values[key] = (value, None if ttl is None else time.monotonic() + ttl)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._maps.pop(key, None)
        self._counters.pop(key, None)

    async def map_put_new(self, key: str, field: str, value: bytes) -> bool:
        fields = self._maps.setdefault(key, {})
        if field in fields:
            return False
        fields[field] = value
        return True

    async def map_get_all(self, key: str) -> dict[str, bytes]:
        return dict(self._maps.get(key, {}))

    async def map_delete(self, key: str, field: str) -> bool:
        return self._maps.get(key, {}).pop(field, None) is not None

    async def map_get(self, key: str, field: str) -> bytes | None:
        return self._maps.get(key, {}).get(field)

    async def map_set(self, key: str, field: str, value: bytes) -> None:
        self._maps.setdefault(key, {})[field] = value

    async def map_swap(
        self, key: str, field: str, expected: bytes | None, value: bytes | None
    ) -> bool:
        fields = self._maps.setdefault(key, {})
        if fields.get(field) != expected:
            return False
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value
        return True

    async def set_new(self, key: str, value: bytes, ttl: float) -> bool:
        if await self.get(key) is not None:
            return False
        await self.set(key, value, ttl)
        return True

    async def extend_if(self, key: str, value: bytes, ttl: float) -> bool:
        if await self.get(key) != value:
            return False
        await self.set(key, value, ttl)
        return True

    async def delete_if(self, key: str, value: bytes) -> bool:
        if await self.get(key) != value:
            return False
        self._values.pop(key, None)
        return True

    async def counter_get(self, key: str) -> int:
        return self._counters.get(key, 0)

    async def counter_set(self, key: str, value: int) -> None:
        self._counters[key] = max(0, value)

    async def counter_reserve(self, key: str, cap: int | None) -> int | None:
        value = self._counters.get(key, 0)
        if cap is not None and value >= cap:
            return None
        self._counters[key] = value + 1
        return value + 1

    async def counter_release(self, key: str) -> None:
        value = self._counters.get(key, 0)
        if value > 0:
            self._counters[key] = value - 1

    async def counters_reserve(self, keys: Sequence[str], caps: Sequence[int | None]) -> int | None:
        for index, (key, cap) in enumerate(zip(keys, caps, strict=True)):
            if cap is not None and self._counters.get(key, 0) >= cap:
                return index
        for key in keys:
            self._counters[key] = self._counters.get(key, 0) + 1
        return None

    async def counters_release(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.counter_release(key)

    def _window_count(self, key: str, now: float) -> int:
        entry = self._windows.get(key)
        if entry is None:
            return 0
        if entry[1] <= now:
            del self._windows[key]
            return 0
        return entry[0]

    async def windows_acquire(self, checks: Sequence[WindowCheck], now: float) -> WindowResult:
        states = []
        keys = []
        for check in checks:
            current_key, previous_key = counter_keys(check, now)
            keys.append(current_key)
            states.append(
                WindowState(
                    self._window_count(previous_key, now),
                    self._window_count(current_key, now),
                    elapsed_in_window(now, check.seconds),
                )
            )
        if not all(admits(state, check) for state, check in zip(states, checks, strict=True)):
            return WindowResult(False, tuple(states))
        counted = []
        for check, key, state in zip(checks, keys, states, strict=True):
            if check.count:
                self._windows[key] = (state.current + 1, now + expiry_seconds(check))
                counted.append(key)
        return WindowResult(True, tuple(states), tuple(counted))

    async def windows_release(self, keys: Sequence[str]) -> None:
        for key in keys:
            entry = self._windows.get(key)
            if entry is not None and entry[0] > 0:
                self._windows[key] = (entry[0] - 1, entry[1])

    async def close(self) -> None:
        return None
