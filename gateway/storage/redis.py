"""A Redis server (or Sentinel-managed primary, or Cluster) shared by every replica.

Reached through redis-py's asyncio client with one connection pool per gateway.  The
operations that decide something (a window check, a capped counter) are Lua scripts, so
each is one round trip and one atomic step: two replicas can never both take the last
unit of a limit.  Keys are prefixed ``dcr-gateway:``; on a Cluster the prefix is a hash tag,
``{dcr-gateway}:``, so every key lives in one slot and a script may touch several of them
(registration traffic is far too small to need sharding).

URIs: ``redis://``, ``rediss://``, ``unix://`` as redis-py reads them;
``redis+sentinel://[:password@]host:port[,host:port]/<service>[/<db>]`` (``rediss+sentinel``
for TLS); ``redis+cluster://[:password@]host:port[,host:port]`` (``rediss+cluster``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisClusterException, RedisError

from gateway.storage.errors import StorageError
from gateway.storage.windows import (
    WindowCheck,
    WindowResult,
    WindowState,
    counter_keys,
    elapsed_in_window,
    expiry_seconds,
)

# KEYS: two per check (current window, previous window).
# ARGV: five per check: limit, expiry, count (0/1), elapsed, seconds.
# The inequality is gateway.storage.windows.admits, evaluated in the same order.
_WINDOWS_ACQUIRE = """
local n = #KEYS / 2
local out = {1}
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local limit = tonumber(ARGV[5 * i - 4])
  local elapsed = tonumber(ARGV[5 * i - 1])
  local seconds = tonumber(ARGV[5 * i])
  if previous * (seconds - elapsed) / seconds + current + 1 > limit then out[1] = 0 end
  out[2 * i] = previous
  out[2 * i + 1] = current
end
if out[1] == 1 then
  for i = 1, n do
    if ARGV[5 * i - 2] == '1' then
      redis.call('INCR', KEYS[2 * i - 1])
      redis.call('EXPIRE', KEYS[2 * i - 1], tonumber(ARGV[5 * i - 3]))
    end
  end
end
return out
"""
_RELEASE = """
for i = 1, #KEYS do
  local value = tonumber(redis.call('GET', KEYS[i]) or '0')
  if value > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""
# ARGV[1]: the cap, or -1 for none.  Returns the new value, or -1 when at the cap.
_COUNTER_RESERVE = """
local value = tonumber(redis.call('GET', KEYS[1]) or '0')
local cap = tonumber(ARGV[1])
if cap >= 0 and value >= cap then return -1 end
return redis.call('INCR', KEYS[1])
"""

# ARGV[i]: the cap of KEYS[i], or -1 for none.  Returns the index (0-based) of the first
# full counter, or -1 when every one was counted.
_COUNTERS_RESERVE = """
for i = 1, #KEYS do
  local cap = tonumber(ARGV[i])
  if cap >= 0 and tonumber(redis.call('GET', KEYS[i]) or '0') >= cap then return i - 1 end
end
for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end
return -1
"""
# ARGV[1]: the expected value ('' with ARGV[3] = '0': absent); ARGV[2]: the new value
# (ARGV[4] = '0': delete the field).  Returns 1 when it swapped.
_MAP_SWAP = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""
_EXTEND_IF = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
_DELETE_IF = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def _hosts(netloc: str, default_port: int) -> tuple[str | None, list[tuple[str, int]]]:
    """``[:password@]host:port[,host:port]`` -> (password, [(host, port)])."""
    password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[1] if ":" in auth else auth) or None
    hosts = []
    for part in (p.strip() for p in netloc.split(",")):
        if part.startswith("["):  # [2001:db8::1]:26379
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        elif part.count(":") == 1:
            host, port = part.split(":")
        else:
            host, port = part, ""
        if not host:
            raise ValueError(f"no host in {part!r}")
        hosts.append((host, int(port) if port else default_port))
    return password, hosts


def check_uri(uri: str) -> None:
    """Raise ``ValueError`` naming what is wrong with a Sentinel or Cluster URI."""
    scheme = uri.split("://", 1)[0].lower()
    parts = urlsplit(uri)
    try:
        _hosts(parts.netloc, 0)
    except ValueError as exc:
        raise ValueError(f"{exc}: write host:port[,host:port]") from None
    path = [p for p in parts.path.split("/") if p]
    if scheme in SENTINEL_SCHEMES:
        if not path:
            raise ValueError("a redis+sentinel:// URI names the service: host:port/<service>")
        if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("write redis+sentinel://host:port/<service>[/<db>]")
    elif path:
        raise ValueError("a redis+cluster:// URI has no path (a cluster has one database)")


def redis_client(uri: str, timeout: float) -> tuple[Any, str]:
    """The redis-py client for ``uri`` and the key prefix to use with it."""
    scheme = uri.split("://", 1)[0].lower()
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if scheme in SENTINEL_SCHEMES:
        parts = urlsplit(uri)
        password, hosts = _hosts(parts.netloc, 26379)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("a redis+sentinel:// URI names the service: .../<service>[/<db>]")
        db = int(path[1]) if len(path) > 1 else 0
        if scheme.startswith("rediss"):
            options["ssl"] = True
        sentinel = Sentinel(
            hosts, sentinel_kwargs={"password": password, **options}, password=password, **options
        )
        return sentinel.master_for(path[0], db=db), "dcr-gateway:"
    if scheme in CLUSTER_SCHEMES:
        parts = urlsplit(uri)
        password, hosts = _hosts(parts.netloc, 6379)
        nodes = [ClusterNode(host, port) for host, port in hosts]
        cluster = RedisCluster(
            startup_nodes=nodes, password=password, ssl=scheme.startswith("rediss"), **options
        )
        return cluster, "{dcr-gateway}:"
    return aioredis.from_url(uri, **options), "dcr-gateway:"


class RedisStorage:
    def __init__(self, uri: str, timeout: float = 2.0) -> None:
        self.uri = uri
        #: Called on every failed operation (the metrics' storage error counter).
        self.on_error: Callable[[], None] | None = None
        self.client, self.prefix = redis_client(uri, timeout)
        self._cluster = isinstance(self.client, RedisCluster)
        self._acquire = self.client.register_script(_WINDOWS_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)
        self._reserve = self.client.register_script(_COUNTER_RESERVE)
        self._swap = self.client.register_script(_MAP_SWAP)
        self._counters_reserve = self.client.register_script(_COUNTERS_RESERVE)
        self._extend_if = self.client.register_script(_EXTEND_IF)
        self._delete_if = self.client.register_script(_DELETE_IF)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def _run(self, operation: Any) -> Any:
        """Await one operation; every failure of the store becomes :class:`StorageError`.

        A Cluster client learns the slot map first: before it has, redis-py sends commands
        to a random node, and a burst of MOVED answers makes it close connections other
        tasks are using (redis-py 8.1).  ``initialize`` does nothing once it is done."""
        try:
            if self._cluster:
                await self.client.initialize()
            return await operation
        except (RedisError, RedisClusterException, OSError) as exc:
            close = getattr(operation, "close", None)
            if close is not None:
                close()  # never awaited when initialize failed: no warning about it
            if self.on_error is not None:
                self.on_error()
            raise StorageError(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def ping(self) -> None:
        await self._run(self.client.ping())

    async def get(self, key: str) -> bytes | None:
        value = await self._run(self.client.get(self._key(key)))
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        await self._run(self.client.set(self._key(key), value, px=px))

    async def delete(self, key: str) -> None:
        await self._run(self.client.delete(self._key(key)))

    async def map_put_new(self, key: str, field: str, value: bytes) -> bool:
        return bool(await self._run(self.client.hsetnx(self._key(key), field, value)))

    async def map_get_all(self, key: str) -> dict[str, bytes]:
        raw = await self._run(self.client.hgetall(self._key(key)))
        return {
            (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): bytes(v)
            for k, v in raw.items()
        }

    async def map_delete(self, key: str, field: str) -> bool:
        return bool(await self._run(self.client.hdel(self._key(key), field)))

    async def map_get(self, key: str, field: str) -> bytes | None:
        value = await self._run(self.client.hget(self._key(key), field))
        return value if value is None else bytes(value)

    async def map_set(self, key: str, field: str, value: bytes) -> None:
        await self._run(self.client.hset(self._key(key), field, value))

    async def map_swap(
        self, key: str, field: str, expected: bytes | None, value: bytes | None
    ) -> bool:
        args = [
            field,
            b"" if expected is None else expected,
            "0" if expected is None else "1",
            b"" if value is None else value,
            "0" if value is None else "1",
        ]
        return bool(await self._run(self._swap(keys=[self._key(key)], args=args)))

    async def set_new(self, key: str, value: bytes, ttl: float) -> bool:
        px = max(1, int(ttl * 1000))
        return bool(await self._run(self.client.set(self._key(key), value, px=px, nx=True)))

    async def extend_if(self, key: str, value: bytes, ttl: float) -> bool:
        px = max(1, int(ttl * 1000))
        return bool(await self._run(self._extend_if(keys=[self._key(key)], args=[value, px])))

    async def delete_if(self, key: str, value: bytes) -> bool:
        return bool(await self._run(self._delete_if(keys=[self._key(key)], args=[value])))

    async def counter_get(self, key: str) -> int:
        value = await self._run(self.client.get(self._key(key)))
        return int(value) if value is not None else 0

    async def counter_set(self, key: str, value: int) -> None:
        await self._run(self.client.set(self._key(key), max(0, value)))

    async def counter_reserve(self, key: str, cap: int | None) -> int | None:
        value = await self._run(
            self._reserve(keys=[self._key(key)], args=[-1 if cap is None else cap])
        )
        return None if int(value) < 0 else int(value)

    async def counter_release(self, key: str) -> None:
        await self._run(self._release(keys=[self._key(key)], args=[]))

    async def counters_reserve(self, keys: Sequence[str], caps: Sequence[int | None]) -> int | None:
        args = [-1 if cap is None else cap for cap in caps]
        full = await self._run(self._counters_reserve(keys=[self._key(k) for k in keys], args=args))
        return None if int(full) < 0 else int(full)

    async def counters_release(self, keys: Sequence[str]) -> None:
        if keys:
            await self._run(self._release(keys=[self._key(k) for k in keys], args=[]))

    async def windows_acquire(self, checks: Sequence[WindowCheck], now: float) -> WindowResult:
        keys: list[str] = []
        args: list[str | int] = []
        elapsed = []
        for check in checks:
            current, previous = counter_keys(check, now)
            keys += [self._key(current), self._key(previous)]
            into = elapsed_in_window(now, check.seconds)
            elapsed.append(into)
            args += [
                check.limit,
                expiry_seconds(check),
                int(check.count),
                repr(into),
                check.seconds,
            ]
        out = await self._run(self._acquire(keys=keys, args=args))
        states = tuple(
            WindowState(int(out[2 * i + 1]), int(out[2 * i + 2]), elapsed[i])
            for i in range(len(checks))
        )
        allowed = int(out[0]) == 1
        counted = tuple(counter_keys(check, now)[0] for check in checks if allowed and check.count)
        return WindowResult(allowed, states, counted)

    async def windows_release(self, keys: Sequence[str]) -> None:
        if keys:
            await self._run(self._release(keys=[self._key(k) for k in keys], args=[]))

    async def close(self) -> None:
        await self.client.aclose()
        # A Sentinel-managed pool also holds connections to the Sentinels themselves.
        pool = getattr(self.client, "connection_pool", None)
        manager = getattr(pool, "sentinel_manager", None)
        if manager is not None:
            for sentinel in manager.sentinels:
                await sentinel.aclose()
