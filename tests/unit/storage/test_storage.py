"""Choosing the store from the config's storage URI."""

from __future__ import annotations

import pytest

from gateway.storage import MemoryStorage, RedisStorage, open_storage


async def test_memory_storage_is_always_reachable() -> None:
    storage = open_storage("memory://")
    assert isinstance(storage, MemoryStorage)
    await storage.ping()
    await storage.close()


@pytest.mark.parametrize("uri", ["redis://127.0.0.1:6379/0", "rediss://r.example:6380/1"])
async def test_redis_uris_open_redis(uri: str) -> None:
    storage = open_storage(uri)
    assert isinstance(storage, RedisStorage)
    assert storage.uri == uri
    await storage.close()  # no connection was made: closing is still clean


async def test_unreachable_redis_fails_ping() -> None:
    storage = RedisStorage("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(Exception) as raised:
        await storage.ping()
    assert "connect" in str(raised.value).lower() or isinstance(raised.value, OSError)
    await storage.close()
