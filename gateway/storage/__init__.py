"""Where shared state lives: ``memory://`` for one process, Redis for several replicas.

A small key-value interface (bytes values, optional expiry) that client records, rate
limits and token use counts build on.  Redis is reached through redis-py's asyncio client
with one connection pool per gateway.  Errors of the store are :class:`StorageError`, so
callers decide once whether to fail closed or open.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class StorageError(RuntimeError):
    """The store could not be reached or answered an error."""


class Storage(Protocol):
    uri: str

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryStorage:
    """State inside this process: always reachable, lost on restart."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._values: dict[str, tuple[bytes, float | None]] = {}

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

    async def close(self) -> None:
        return None


class RedisStorage:
    """A Redis server shared by every replica (keys are prefixed ``dcr-gateway:``)."""

    PREFIX = "dcr-gateway:"

    def __init__(self, uri: str, timeout: float = 2.0) -> None:
        self.uri = uri
        self.client = aioredis.from_url(uri, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def ping(self) -> None:
        await self.client.ping()

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(self.PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StorageError(str(exc)) from exc
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        try:
            await self.client.set(
                self.PREFIX + key, value, px=None if ttl is None else max(1, int(ttl * 1000))
            )
        except (RedisError, OSError) as exc:
            raise StorageError(str(exc)) from exc

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete(self.PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StorageError(str(exc)) from exc

    async def close(self) -> None:
        await self.client.aclose()


def open_storage(uri: str) -> Storage:
    """The store named by the config's ``storage`` URI (already validated)."""
    if uri.lower().startswith("memory://"):
        return MemoryStorage(uri)
    return RedisStorage(uri)
