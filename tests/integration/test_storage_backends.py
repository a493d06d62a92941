"""Every storage backend behaves like every other, against real servers.

The gateway's replicas share one store: client records, rate-limit windows and the use
counts of initial access tokens all live in it, and a limit of ten means ten whichever
replica answers and whichever backend the operator chose.  So the same tests run on each
supported backend: ``memory://`` (one process; the reference), a real ``redis-server``
(``redis://``), a Sentinel-managed primary (``redis+sentinel://host:port/<service>``) and a
Redis Cluster of three masters (``redis+cluster://h:p,h:p,h:p``).  They prove that values,
expiry, maps and capped counters answer the same; that the sliding windows are
all-or-nothing, weigh the previous window exactly as :mod:`gateway.storage.windows` says
(hence the same ``Retry-After`` everywhere) and give back exactly what they counted; that
fifty concurrent requests from two replicas (two storage objects on one URI) take exactly
the limit, never one more; that one window check spanning several rules works on a Cluster
(the keys share the ``{dcr-gateway}`` hash tag, so the script does not fail with
CROSSSLOT); that an outage surfaces as :class:`~gateway.storage.StorageError` (which the
policy turns into fail-closed or fail-open) and ends, for the same storage object, when the
server is back; and that closing a storage leaves no connection open.

The servers have no persistence; each test uses keys of its own (``ns``), so tests sharing a
server do not see each other's counters.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import RedisClusterException, RedisError

from gateway.storage import (
    MemoryStorage,
    RedisStorage,
    Storage,
    StorageError,
    WindowCheck,
    WindowResult,
    open_storage,
)
from gateway.storage.windows import admits, counter_keys, retry_after, weighted
from tests.support.redis import RedisCluster, RedisSentinel, RedisServer, start_cluster

pytestmark = pytest.mark.integration

BACKENDS = ("memory", "redis", "sentinel", "cluster")
#: A window boundary of every window length used below (10 s, 60 s), far from today: the
#: windows run on the ``now`` the tests pass, not on the clock.
T0 = 60.0 * 1_000_000


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A Sentinel watching a primary of its own (``sentinel.master``)."""
    master = RedisServer(tmp_path_factory.mktemp("sentinel-master")).start()
    watcher = RedisSentinel(tmp_path_factory.mktemp("sentinel"), master)
    try:
        yield watcher.start()
    finally:
        watcher.stop()
        master.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster of three masters sharing the 16384 slots."""
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"), 3)
    try:
        yield nodes
    finally:
        nodes.stop()


def backend_uri(request: pytest.FixtureRequest, backend: str) -> str:
    """The storage URI of ``backend``, starting its (shared) servers on first use."""
    if backend == "memory":
        return "memory://"
    if backend == "redis":
        return request.getfixturevalue("redis_server").url
    return request.getfixturevalue(backend).url


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    storage = open_storage(backend_uri(request, request.param))
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
def ns() -> str:
    """A key prefix of this test's own."""
    return f"it-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def replicas(store: Storage) -> AsyncIterator[list[Storage]]:
    """Two gateways' stores: two storage objects (two connection pools) on the same URI.
    ``memory://`` is one process's state, so there both are the same object."""
    if isinstance(store, MemoryStorage):
        yield [store, store]
        return
    other = open_storage(store.uri)
    try:
        yield [store, other]
    finally:
        await other.close()


# --------------------------------------------------------------------------- values, maps


async def test_ping(store: Storage) -> None:
    assert await store.ping() is None


async def test_get_set_delete(store: Storage, ns: str) -> None:
    key = f"{ns}:value"
    assert await store.get(key) is None
    await store.set(key, b"first")
    assert await store.get(key) == b"first"
    await store.set(key, b"\x00\xffsecond")  # any bytes, overwritten
    assert await store.get(key) == b"\x00\xffsecond"
    await store.delete(key)
    assert await store.get(key) is None
    await store.delete(key)  # deleting what is not there is not an error
    await store.delete(f"{ns}:never-set")
    assert await store.get(key) is None


async def test_set_with_ttl_expires(store: Storage, ns: str) -> None:
    await store.set(f"{ns}:short", b"gone soon", ttl=0.3)
    await store.set(f"{ns}:kept", b"no ttl")
    await store.set(f"{ns}:renewed", b"ttl", ttl=0.3)
    await store.set(f"{ns}:renewed", b"ttl dropped")  # a set without ttl keeps it for good
    assert await store.get(f"{ns}:short") == b"gone soon"
    await asyncio.sleep(0.45)
    assert await store.get(f"{ns}:short") is None
    assert await store.get(f"{ns}:kept") == b"no ttl"
    assert await store.get(f"{ns}:renewed") == b"ttl dropped"


async def test_maps(store: Storage, ns: str) -> None:
    key = f"{ns}:map"
    assert await store.map_get_all(key) == {}
    assert await store.map_put_new(key, "client-a", b"one") is True
    assert await store.map_put_new(key, "client-a", b"two") is False  # first one wins
    assert await store.map_put_new(key, "client-é", b"\x00") is True
    assert await store.map_get_all(key) == {"client-a": b"one", "client-é": b"\x00"}
    assert await store.map_delete(key, "client-a") is True
    assert await store.map_delete(key, "client-a") is False
    assert await store.map_delete(f"{ns}:no-map", "client-a") is False
    assert await store.map_get_all(key) == {"client-é": b"\x00"}
    assert await store.map_put_new(key, "client-a", b"three") is True  # free again
    assert await store.map_get_all(key) == {"client-a": b"three", "client-é": b"\x00"}
    await store.delete(key)  # delete removes a whole map
    assert await store.map_get_all(key) == {}


# --------------------------------------------------------------------------- counters


async def test_counters(store: Storage, ns: str) -> None:
    capped, free = f"{ns}:capped", f"{ns}:free"
    assert await store.counter_get(capped) == 0
    assert [await store.counter_reserve(capped, 3) for _ in range(4)] == [1, 2, 3, None]
    assert await store.counter_get(capped) == 3  # the refused one took nothing
    await store.counter_release(capped)
    assert await store.counter_get(capped) == 2
    assert await store.counter_reserve(capped, 3) == 3
    assert await store.counter_reserve(capped, 3) is None
    assert await store.counter_reserve(f"{ns}:zero", 0) is None
    assert await store.counter_get(f"{ns}:zero") == 0

    assert [await store.counter_reserve(free, None) for _ in range(12)] == list(range(1, 13))
    assert await store.counter_get(free) == 12


async def test_map_fields_and_compare_and_set(store: Storage, ns: str) -> None:
    """The registry's operations: one field read and written, and compare-and-set, which
    is how a status change refuses to overwrite one made meanwhile elsewhere."""
    key = f"{ns}:registry"
    assert await store.map_get(key, "a") is None
    await store.map_set(key, "a", b"one")
    assert await store.map_get(key, "a") == b"one"
    assert not await store.map_swap(key, "a", b"stale", b"two")  # someone changed it
    assert await store.map_get(key, "a") == b"one"
    assert await store.map_swap(key, "a", b"one", b"two")
    assert not await store.map_swap(key, "b", b"x", b"y")  # expected a value: absent
    assert await store.map_swap(key, "b", None, b"new")  # expected absent: created
    assert not await store.map_swap(key, "b", None, b"again")
    assert await store.map_swap(key, "b", b"new", None)  # removed
    assert await store.map_get_all(key) == {"a": b"two"}


async def test_compare_and_set_lets_one_of_two_replicas_win(
    replicas: list[Storage], ns: str
) -> None:
    key = f"{ns}:race"
    await replicas[0].map_set(key, "client", b"pending")
    results = await asyncio.gather(
        *(
            replicas[i % 2].map_swap(key, "client", b"pending", f"by-{i}".encode())
            for i in range(20)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await replicas[1].map_get(key, "client") == f"by-{winner}".encode()


async def test_locks_are_taken_once_renewed_and_released_by_their_holder(
    replicas: list[Storage], ns: str
) -> None:
    """``set_new`` / ``extend_if`` / ``delete_if``: the lifecycle job's lock and the claims
    on clients being deleted."""
    key = f"{ns}:lock"
    taken = await asyncio.gather(
        *(replicas[i % 2].set_new(key, f"r{i}".encode(), 5.0) for i in range(10))
    )
    assert taken.count(True) == 1
    holder = f"r{taken.index(True)}".encode()
    assert not await replicas[0].extend_if(key, b"someone-else", 5.0)
    assert await replicas[1].extend_if(key, holder, 5.0)
    assert not await replicas[0].delete_if(key, b"someone-else")
    assert await replicas[0].get(key) == holder
    assert await replicas[1].delete_if(key, holder)
    assert await replicas[0].get(key) is None
    assert await replicas[0].set_new(key, b"next", 0.2)
    await asyncio.sleep(0.35)  # the lock of a holder that died expires
    assert await replicas[1].set_new(key, b"after", 5.0)


async def test_several_counters_are_reserved_all_or_nothing(
    replicas: list[Storage], ns: str
) -> None:
    """Quotas: a vendor's and a tenant's counter move together or not at all, exactly,
    with two replicas racing for the last units."""
    vendor, tenant = f"{ns}:vendor", f"{ns}:tenant"
    assert await replicas[0].counters_reserve([vendor, tenant], [None, 5]) is None
    results = await asyncio.gather(
        *(replicas[i % 2].counters_reserve([vendor, tenant], [3, 5]) for i in range(12))
    )
    assert results.count(None) == 2  # the vendor's cap (3) is reached first
    assert set(results) == {None, 0}
    assert (await replicas[1].counter_get(vendor), await replicas[1].counter_get(tenant)) == (3, 3)
    assert await replicas[0].counters_reserve([vendor, tenant], [None, 3]) == 1
    assert await replicas[0].counter_get(vendor) == 3  # nothing counted on refusal
    await replicas[1].counters_release([vendor, tenant])
    await replicas[1].counter_set(tenant, 0)
    assert (await replicas[0].counter_get(vendor), await replicas[0].counter_get(tenant)) == (2, 0)
    await replicas[0].counters_release([tenant])  # never below zero
    assert await replicas[0].counter_get(tenant) == 0


async def test_counter_release_never_goes_below_zero(store: Storage, ns: str) -> None:
    key = f"{ns}:uses"
    await store.counter_release(key)  # nothing to give back
    assert await store.counter_get(key) == 0
    assert await store.counter_reserve(key, 1) == 1
    await store.counter_release(key)
    await store.counter_release(key)
    assert await store.counter_get(key) == 0
    # No credit was banked by the extra releases: the cap still holds at one.
    assert await store.counter_reserve(key, 1) == 1
    assert await store.counter_reserve(key, 1) is None
    await store.delete(key)
    assert await store.counter_get(key) == 0


# --------------------------------------------------------------------------- windows


def currents(result: WindowResult) -> list[int]:
    return [state.current for state in result.states]


async def test_windows_are_all_or_nothing(store: Storage, ns: str) -> None:
    full = WindowCheck(f"{ns}:full", 1, 60)
    roomy = WindowCheck(f"{ns}:roomy", 5, 60)
    now = T0 + 5
    first = await store.windows_acquire([full], now)
    assert first.allowed
    assert first.counted == (counter_keys(full, now)[0],)

    refused = await store.windows_acquire([roomy, full], now)
    assert not refused.allowed
    assert refused.counted == ()
    assert [(s.previous, s.current) for s in refused.states] == [(0, 0), (0, 1)]
    assert [admits(s, c) for s, c in zip(refused.states, [roomy, full], strict=True)] == [
        True,
        False,
    ]

    # Neither window counted the refused request: not the one with room, nor the full one.
    assert currents(await store.windows_acquire([roomy], now)) == [0]
    assert currents(await store.windows_acquire([full], now)) == [1]
    # A check that does not count is checked all the same, and still counts nothing.
    observer = WindowCheck(f"{ns}:roomy", 5, 60, count=False)
    seen = await store.windows_acquire([observer, full], now)
    assert not seen.allowed and seen.counted == ()
    assert currents(await store.windows_acquire([observer], now)) == [1]


async def test_windows_weigh_the_previous_window(store: Storage, ns: str) -> None:
    """Six requests late in one window, then the next window: ``6 * (60 - 15) / 60 = 4.5``
    of them still overlap the sliding minute, so five more fit under ten, not ten."""
    check = WindowCheck(f"{ns}:minute", 10, 60)
    late = [await store.windows_acquire([check], T0 + 50 + i) for i in range(6)]
    assert all(r.allowed for r in late)
    assert [r.states[0].current for r in late] == [0, 1, 2, 3, 4, 5]

    now = T0 + 60 + 15
    after = [await store.windows_acquire([check], now) for _ in range(6)]
    assert [r.allowed for r in after] == [True] * 5 + [False]
    assert [(s.previous, s.current) for s in (r.states[0] for r in after)] == [
        (6, n) for n in range(6)
    ]
    refused = after[-1].states[0]
    assert refused.elapsed == 15.0
    assert weighted(refused, 60) == 9.5
    assert retry_after(refused, check) == 5  # at elapsed 20: 6 * 40 / 60 + 5 + 1 == 10
    assert not (await store.windows_acquire([check], T0 + 60 + 19.9)).allowed
    exact = await store.windows_acquire([check], T0 + 60 + 20)
    assert exact.allowed
    assert (exact.states[0].previous, exact.states[0].current) == (6, 5)
    # Two windows on, the first six are gone: the previous window now holds 5 + 1.
    later = await store.windows_acquire([check], T0 + 120)
    assert (later.states[0].previous, later.states[0].current) == (6, 0)


# Two rules of one request: 3 per 10 s and 5 per minute; (offset from T0, allowed,
# Retry-After of a refusal).  Worked by hand from gateway.storage.windows.
SEQUENCE = [
    (1, True, None),
    (2, True, None),
    (3, True, None),
    (4, False, 10),  # burst full: wait for the next window and 2/3 of it (9.33 s)
    (12, False, 2),  # 3 * 8/10 + 1 > 3 until elapsed 10/3
    (14, True, None),  # 3 * 6/10 + 0 + 1 = 2.8
    (15, False, 2),  # 3 * 5/10 + 1 + 1 > 3 until elapsed 20/3
    (20, True, None),  # a new burst window: 1 * 10/10 + 0 + 1 = 2
    (21, False, 51),  # the minute is full (5): 39 s to its end, 12 s into the next
    (90, True, None),  # 5 * 30/60 + 0 + 1 = 3.5
    (91, True, None),
    (92, False, 4),  # 5 * 28/60 + 2 + 1 > 5 until elapsed 36
]


async def run_sequence(storage: Storage, ns: str) -> list[tuple[bool, tuple, int | None]]:
    checks = [WindowCheck(f"{ns}:burst", 3, 10), WindowCheck(f"{ns}:minute", 5, 60)]
    seen = []
    for offset, _, _ in SEQUENCE:
        result = await storage.windows_acquire(checks, T0 + offset)
        full = [
            retry_after(state, check)
            for state, check in zip(result.states, checks, strict=True)
            if not admits(state, check)
        ]
        assert result.allowed == (not full)
        seen.append((result.allowed, result.states, max(full) if full else None))
    return seen


async def test_windows_retry_after_is_the_same_everywhere(store: Storage, ns: str) -> None:
    """The same calls give the same states, decisions and ``Retry-After`` as the in-process
    store (the reference) and as worked by hand."""
    seen = await run_sequence(store, ns)
    assert [(allowed, wait) for allowed, _, wait in seen] == [
        (allowed, wait) for _, allowed, wait in SEQUENCE
    ]
    assert seen == await run_sequence(MemoryStorage(), ns)


async def test_windows_release_gives_back_what_was_counted(store: Storage, ns: str) -> None:
    counted = WindowCheck(f"{ns}:attempts", 5, 60)
    uncounted = WindowCheck(f"{ns}:registrations", 5, 60, count=False)
    other = WindowCheck(f"{ns}:vendor", 5, 60)
    checks = [counted, uncounted, other]
    now = T0 + 30

    first = await store.windows_acquire(checks, now)
    assert first.counted == (counter_keys(counted, now)[0], counter_keys(other, now)[0])
    #: The same windows, checked without counting: what they hold now.
    probe = [WindowCheck(c.key, c.limit, c.seconds, count=False) for c in checks]
    second = await store.windows_acquire(checks, now)
    assert currents(second) == [1, 0, 1]
    assert currents(await store.windows_acquire(probe, now)) == [2, 0, 2]
    await store.windows_release(second.counted)
    assert currents(await store.windows_acquire(probe, now)) == [1, 0, 1]
    third = await store.windows_acquire(checks, now)
    assert currents(third) == [1, 0, 1]  # the released unit was taken again, nothing more
    await store.windows_release(third.counted)
    await store.windows_release(first.counted)
    assert currents(await store.windows_acquire(probe, now)) == [0, 0, 0]
    await store.windows_release(first.counted)  # once too often: stays at zero
    await store.windows_release(())
    assert currents(await store.windows_acquire(probe, now)) == [0, 0, 0]
    assert currents(await store.windows_acquire(checks, now)) == [0, 0, 0]
    await store.windows_release([counter_keys(counted, now)[0], counter_keys(other, now)[0]])

    # A unit counted in one window and given back in the next one leaves the previous
    # window's counter (the one the next window weighs) one lower.
    taken = await store.windows_acquire([counted], now)
    taken_too = await store.windows_acquire([counted], now)
    next_minute = T0 + 60 + 1
    await store.windows_release(taken.counted)
    state = (await store.windows_acquire(probe[:1], next_minute)).states[0]
    assert (state.previous, state.current) == (1, 0)
    await store.windows_release(taken_too.counted)
    state = (await store.windows_acquire(probe[:1], next_minute)).states[0]
    assert (state.previous, state.current) == (0, 0)


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_counter_reserve_takes_exactly_the_cap(
    replicas: list[Storage], ns: str
) -> None:
    key = f"{ns}:token-uses"
    calls = [replicas[i % 2].counter_reserve(key, 10) for i in range(50)]
    results = await asyncio.gather(*calls)
    assert sorted(r for r in results if r is not None) == list(range(1, 11))
    assert results.count(None) == 40
    assert await replicas[0].counter_get(key) == 10
    assert await replicas[1].counter_get(key) == 10


async def test_concurrent_windows_acquire_admits_exactly_the_limit(
    replicas: list[Storage], ns: str
) -> None:
    checks = [WindowCheck(f"{ns}:global", 10, 60), WindowCheck(f"{ns}:per-ip", 1000, 60)]
    now = T0 + 42
    results = await asyncio.gather(
        *(replicas[i % 2].windows_acquire(checks, now) for i in range(50))
    )
    admitted = [r for r in results if r.allowed]
    assert len(admitted) == 10
    # One atomic step each: every admitted request saw a different count.
    assert sorted(r.states[0].current for r in admitted) == list(range(10))
    assert all(r.counted == () for r in results if not r.allowed)
    probe = [WindowCheck(c.key, c.limit, c.seconds, count=False) for c in checks]
    for replica in replicas:
        assert currents(await replica.windows_acquire(probe, now)) == [10, 10]


# --------------------------------------------------------------------------- cluster


async def test_cluster_window_check_spans_rules_on_every_master(
    cluster: RedisCluster, ns: str
) -> None:
    """Without a common hash tag the counters of several rules live on different masters
    and one script cannot touch them all (CROSSSLOT); with ``{dcr-gateway}`` it can."""
    storage = open_storage(cluster.url)
    assert isinstance(storage, RedisStorage)
    client = storage.client
    assert isinstance(client, AsyncRedisCluster)
    try:
        await storage.ping()
        now = T0 + 7
        checks: list[WindowCheck] = []
        untagged_owners: set[int] = set()
        while len(untagged_owners) < 3 or len(checks) < 3:
            check = WindowCheck(f"{ns}:rule-{len(checks)}", 5, 60)
            checks.append(check)
            for key in counter_keys(check, now):
                untagged_owners.add(client.get_node_from_key("dcr-gateway:" + key).port)
        untagged = ["dcr-gateway:" + key for c in checks for key in counter_keys(c, now)]
        with pytest.raises((RedisError, RedisClusterException), match=r"(?i)slot"):
            await client.eval("return 1", len(untagged), *untagged)

        tagged = [storage.prefix + key for c in checks for key in counter_keys(c, now)]
        assert storage.prefix == "{dcr-gateway}:"
        assert len({client.keyslot(key) for key in tagged}) == 1

        result = await storage.windows_acquire(checks, now)
        assert result.allowed
        assert result.counted == tuple(counter_keys(c, now)[0] for c in checks)
        again = await storage.windows_acquire(checks, now)
        assert currents(again) == [1] * len(checks)
        await storage.windows_release(again.counted)
        owner = client.get_node_from_key(tagged[0])
        with redis.Redis(port=owner.port) as direct:
            assert [direct.get(key) for key in tagged[::2]] == [b"1"] * len(checks)
    finally:
        await storage.close()


# --------------------------------------------------------------------------- URIs


async def test_open_storage_picks_the_backend(
    redis_server: RedisServer, sentinel: RedisSentinel, cluster: RedisCluster, ns: str
) -> None:
    memory = open_storage("memory://")
    assert isinstance(memory, MemoryStorage)

    plain = open_storage(redis_server.url)
    via_sentinel = open_storage(sentinel.url)
    clustered = open_storage(cluster.url)
    try:
        for storage in (plain, via_sentinel, clustered):
            assert isinstance(storage, RedisStorage)
        assert isinstance(plain.client, aioredis.Redis)
        assert isinstance(via_sentinel.client, aioredis.Redis)
        assert isinstance(clustered.client, AsyncRedisCluster)
        assert (plain.prefix, via_sentinel.prefix) == ("dcr-gateway:", "dcr-gateway:")
        assert clustered.prefix == "{dcr-gateway}:"

        # Each stores where it says: the sentinel's storage on the primary it names.
        assert sentinel.port != sentinel.master.port
        await plain.set(f"{ns}:where", b"plain")
        await via_sentinel.set(f"{ns}:where", b"sentinel primary")
        await clustered.set(f"{ns}:where", b"cluster")
        with redis.Redis(port=sentinel.master.port) as direct:
            assert direct.get(f"dcr-gateway:{ns}:where") == b"sentinel primary"
        with redis.Redis(port=redis_server.port) as direct:
            assert direct.get(f"dcr-gateway:{ns}:where") == b"plain"
        with redis.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port) as direct:
            assert direct.get(f"{{dcr-gateway}}:{ns}:where") == b"cluster"
    finally:
        for storage in (memory, plain, via_sentinel, clustered):
            await storage.close()


def server_ports(request: pytest.FixtureRequest, backend: str) -> list[int]:
    """Every server a storage on ``backend`` connects to."""
    if backend == "redis":
        return [request.getfixturevalue("redis_server").port]
    if backend == "sentinel":
        watcher = request.getfixturevalue("sentinel")
        return [watcher.port, watcher.master.port]
    return [node.port for node in request.getfixturevalue("cluster").nodes]


def client_counts(ports: list[int]) -> list[int]:
    """How many clients each server has, not counting the one asking."""
    counts = []
    for port in ports:
        with redis.Redis(port=port) as direct:
            counts.append(len(direct.client_list()) - 1)
    return counts


@pytest.mark.parametrize("backend", BACKENDS[1:])
async def test_close_releases_every_connection(
    request: pytest.FixtureRequest, backend: str, ns: str
) -> None:
    """A gateway that stops (or a test) leaves no connection open: not to the data
    server(s), and, with Sentinel, not to the Sentinels it asked for the primary."""
    ports = server_ports(request, backend)
    before = client_counts(ports)
    storage = open_storage(backend_uri(request, backend))
    await storage.ping()  # connected (a Cluster client: initialized) before the burst
    await asyncio.gather(*(storage.counter_reserve(f"{ns}:c", None) for _ in range(20)))
    assert await storage.counter_get(f"{ns}:c") == 20
    assert sum(client_counts(ports)) > sum(before)
    await storage.close()
    deadline = time.monotonic() + 2
    while (after := client_counts(ports)) != before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert after == before


# --------------------------------------------------------------------------- outages


@dataclass
class Deployment:
    """Servers of one test's own, to stop and start again on the same ports."""

    uri: str
    stop: Callable[[], None]
    start: Callable[[], object]
    #: A partial outage to go through first (a Cluster's master holding the keys' slot).
    stop_part: Callable[[], None] | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def deployment_for(backend: str, workdir: Path) -> Deployment:
    if backend == "redis":
        server = RedisServer(workdir / "redis").start()
        return Deployment(server.url, server.stop, server.start, cleanup=[server.stop])
    if backend == "sentinel":
        master = RedisServer(workdir / "master").start()
        watcher = RedisSentinel(workdir / "sentinel", master)
        try:
            watcher.start()
        except BaseException:
            master.stop()
            raise
        # The primary goes away; the Sentinel still answers, naming it.
        return Deployment(
            watcher.url, master.stop, master.start, cleanup=[watcher.stop, master.stop]
        )
    nodes = start_cluster(workdir / "cluster", 3)
    with redis.Redis(port=nodes.nodes[0].port) as client:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", "{dcr-gateway}"))
        owner_port = next(
            int(row[2][1])
            for row in client.execute_command("CLUSTER", "SLOTS")
            if int(row[0]) <= slot <= int(row[1])
        )
    owner = next(node for node in nodes.nodes if node.port == owner_port)
    return Deployment(nodes.url, nodes.stop, nodes.start, owner.stop, cleanup=[nodes.stop])


@pytest.fixture(params=BACKENDS[1:])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    servers = deployment_for(request.param, tmp_path)
    try:
        yield servers
    finally:
        for stop in servers.cleanup:
            stop()


Operation = Callable[[Storage], Awaitable[object]]
NOW = T0 + 3
CHECK = WindowCheck("outage:window", 5, 60)
OPERATIONS: dict[str, Operation] = {
    "ping": lambda s: s.ping(),
    "get": lambda s: s.get("outage:value"),
    "set": lambda s: s.set("outage:value", b"v", ttl=30),
    "map_put_new": lambda s: s.map_put_new("outage:map", "f", b"v"),
    "map_get_all": lambda s: s.map_get_all("outage:map"),
    "counter_reserve": lambda s: s.counter_reserve("outage:uses", 3),
    "counter_release": lambda s: s.counter_release("outage:uses"),
    "windows_acquire": lambda s: s.windows_acquire([CHECK], NOW),
    "windows_release": lambda s: s.windows_release([counter_keys(CHECK, NOW)[0]]),
}


async def failures(storage: Storage, names: list[str]) -> dict[str, type | None]:
    """What each operation raised: the exception's class (``None`` when it succeeded)."""
    raised: dict[str, type | None] = {}
    for name in names:
        try:
            await OPERATIONS[name](storage)
            raised[name] = None
        except Exception as exc:
            raised[name] = type(exc)
    return raised


async def test_outage_raises_storage_error_and_recovers(deployment: Deployment) -> None:
    storage = open_storage(deployment.uri)
    try:
        await storage.ping()
        assert await storage.counter_reserve("outage:uses", 3) == 1
        assert (await storage.windows_acquire([CHECK], NOW)).allowed

        if deployment.stop_part is not None:
            deployment.stop_part()  # the master holding every key of the gateway
            decisive = ["counter_reserve", "windows_acquire"]
            assert await failures(storage, decisive) == dict.fromkeys(decisive, StorageError)

        deployment.stop()
        names = list(OPERATIONS)
        started = time.monotonic()
        assert await failures(storage, names) == dict.fromkeys(names, StorageError)
        assert time.monotonic() - started < 10  # refused connections fail fast

        deployment.start()
        assert await failures(storage, names) == dict.fromkeys(names, None)
        # The same storage object works again (on an empty server: no persistence).
        await storage.set("outage:value", b"back")
        assert await storage.get("outage:value") == b"back"
        assert await storage.counter_get("outage:uses") == 0
        assert await storage.counter_reserve("outage:uses", 3) == 1
        result = await storage.windows_acquire([CHECK], NOW)  # acquired and released above
        assert result.allowed and currents(result) == [0]
    finally:
        await storage.close()
