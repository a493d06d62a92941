"""Where shared state lives: ``memory://`` for one process, Redis for several replicas.

This module only opens, checks and closes the store; rate limits, token use counts and the
client registry build on it.  Redis is reached through redis-py's asyncio client.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aioredis


class Storage(Protocol):
    uri: str

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def close(self) -> None: ...


class MemoryStorage:
    """State inside this process: always reachable, lost on restart."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisStorage:
    """A Redis server shared by every replica."""

    def __init__(self, uri: str, timeout: float = 2.0) -> None:
        self.uri = uri
        self.client = aioredis.from_url(uri, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


def open_storage(uri: str) -> Storage:
    """The store named by the config's ``storage`` URI (already validated)."""
    if uri.lower().startswith("memory://"):
        return MemoryStorage(uri)
    return RedisStorage(uri)
