"""Rate limits and initial access tokens are exact across replicas sharing one Redis.

Two ``dcr-gateway run`` processes, each with its own config file, policy file and audit
file, share one real redis-server and one real node-oidc-provider.  Registrations are fired
at both at once, so the replicas race for the last units of a limit; the limit holds only if
the check and the count are one atomic step in Redis (a Lua script), not a read in one
process followed by a write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway_process import GatewayProcess, start_gateway_process
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

#: The limit; each burst sends 3 * N registrations, alternately to the two replicas.
N = 12
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
CLIENT = {
    "client_name": "Replica Agent",
    "redirect_uris": ["http://127.0.0.1:43210/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "application_type": "native",
    "scope": "openid offline_access",
}
#: Allowed by the gateway's open policy, refused by node-oidc-provider (400): the client is
#: not created, so what the request reserved must be given back.
DOOMED = {**CLIENT, "scope": "openid not-a-scope-of-the-upstream"}
#: Refused by the gateway's policy itself (400 before anything is forwarded).
REFUSED = {**CLIENT, "token_endpoint_auth_method": "tls_client_auth"}
TOKEN = "replica-test-initial-access-token-0123456789"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own: the limits start from zero."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


Replicas = Callable[[dict[str, Any]], tuple[GatewayProcess, GatewayProcess]]


@pytest.fixture
def replicas(tmp_path: Path, upstream, redis: RedisServer) -> Iterator[Replicas]:
    """Start two replicas with the same policy (each from its own file)."""
    started: list[GatewayProcess] = []

    def start(policy: dict[str, Any]) -> tuple[GatewayProcess, GatewayProcess]:
        pair = [
            start_gateway_process(
                tmp_path / name, name, upstream_url=upstream.url, policy=policy, storage=redis.url
            )
            for name in ("replica-a", "replica-b")
        ]
        started.extend(pair)
        for replica in pair:
            replica.wait_ready()
        return pair[0], pair[1]

    try:
        yield start
    finally:
        for replica in started:
            replica.stop()


Result = tuple[int, int, dict[str, str], dict[str, Any]]


class Results(list[Result]):
    """The answers of one burst, and how many audit events each replica had before it."""

    def __init__(self, results: list[Result], events_before: tuple[int, int]) -> None:
        super().__init__(results)
        self.events_before = events_before


async def burst(
    pair: tuple[GatewayProcess, GatewayProcess],
    bodies: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> Results:
    """Send every body at once, body ``i`` to replica ``i % 2``; each result is
    ``(replica index, status, headers, JSON answer)``."""
    events_before = (len(pair[0].registrations()), len(pair[1].registrations()))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, body: dict[str, Any]) -> Result:
            replica = index % 2
            async with session.post(
                pair[replica].url + "/reg", json=body, headers=headers or {}
            ) as response:
                return replica, response.status, dict(response.headers), await response.json()

        results = await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
    return Results(list(results), events_before)


def statuses(results: Results) -> Counter[int]:
    return Counter(status for _, status, _, _ in results)


def created_ids(results: Results) -> set[str]:
    return {answer["client_id"] for _, status, _, answer in results if status == 201}


def assert_one_event_each(
    pair: tuple[GatewayProcess, GatewayProcess], results: Results
) -> dict[str, dict[str, Any]]:
    """Every answer of the burst has exactly one audit event across both audit files,
    written by the replica that answered, with the status it answered, and the burst wrote
    no other event; the events by request id."""
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, replica in enumerate(pair):
        for event in replica.registrations()[results.events_before[index] :]:
            found.setdefault(event["request_id"], []).append((index, event))
    by_id = {}
    for replica, status, headers, answer in results:
        request_id = headers["X-Request-ID"]
        events = found.get(request_id, [])
        assert len(events) == 1, (request_id, status, answer, events)
        index, event = events[0]
        assert index == replica
        assert event["status"] == status
        by_id[request_id] = event
    assert sum(len(v) for v in found.values()) == len(results)
    return by_id


def assert_rate_limited(
    pair: tuple[GatewayProcess, GatewayProcess], results: Results, rule: str
) -> None:
    events = assert_one_event_each(pair, results)
    for _, status, headers, answer in results:
        event = events[headers["X-Request-ID"]]
        if status == 429:
            assert answer["error"] == "rate_limited"
            assert int(headers["Retry-After"]) >= 1
            assert (event["decision"], event["rule"], event["error"]) == (
                "denied",
                rule,
                "rate_limited",
            )
            assert event["upstream_status"] is None  # never forwarded


@pytest.mark.parametrize("key", ["global", "client_ip"])
async def test_registrations_limit_is_exact_across_replicas(upstream, replicas, key):
    """``count: registrations`` with limit N: of 3N racing registrations exactly N are
    created upstream, the others get 429.  Before that, N registrations the upstream
    refuses reserve a unit each and must give it back, or fewer than N would succeed."""
    policy = {
        **OPEN,
        "rate_limits": [
            {"name": "burst", "key": key, "limit": f"{N}/hour", "count": "registrations"}
        ],
    }
    pair = replicas(policy)
    before = set(upstream.client_ids())

    doomed = await burst(pair, [DOOMED] * N)
    assert statuses(doomed) == {400: N}
    assert {answer["error"] for _, _, _, answer in doomed} == {"invalid_client_metadata"}
    events = assert_one_event_each(pair, doomed)
    assert {e["upstream_status"] for e in events.values()} == {400}

    results = await burst(pair, [CLIENT] * (3 * N))
    assert statuses(results) == {201: N, 429: 2 * N}
    new = set(upstream.client_ids()) - before
    assert len(new) == N
    assert new == created_ids(results)
    assert_rate_limited(pair, results, "rate_limit.burst")
    # Both replicas served some of the winners: the count really is shared.
    assert {replica for replica, status, _, _ in results if status == 201} == {0, 1}

    # The limit is reached for both replicas alike.
    again = await burst(pair, [CLIENT, CLIENT])
    assert statuses(again) == {429: 2}
    assert set(upstream.client_ids()) - before == new


async def test_attempts_limit_is_exact_across_replicas(upstream, replicas):
    """``count: attempts`` counts every request that reaches it, whether the policy then
    allows or refuses it: of 3N racing requests (half of them refused by the policy) exactly
    N get past the limit, and only the allowed ones among them reach the upstream."""
    policy = {
        **OPEN,
        "rate_limits": [{"name": "tries", "key": "client_ip", "limit": f"{N}/hour"}],
    }
    pair = replicas(policy)
    before = set(upstream.client_ids())

    bodies = [CLIENT if i % 4 < 2 else REFUSED for i in range(3 * N)]  # both kinds on both
    results = await burst(pair, bodies)
    counts = statuses(results)
    assert counts[429] == 2 * N
    assert counts[201] + counts[400] == N
    assert set(counts) <= {201, 400, 429}
    new = set(upstream.client_ids()) - before
    assert len(new) == counts[201]
    assert new == created_ids(results)
    assert_rate_limited(pair, results, "rate_limit.tries")
    events = assert_one_event_each(pair, results)
    for _, status, headers, _ in results:
        if status == 400:
            event = events[headers["X-Request-ID"]]
            assert event["decision"] == "denied"
            assert event["upstream_status"] is None


async def test_initial_access_token_max_uses_is_exact_across_replicas(upstream, replicas):
    """A policy token with ``max_uses: N``: N registrations the upstream refuses take a use
    each and give it back; then of 3N racing registrations exactly N are created and the
    others get 401 ``initial_access_token.used_up``.  The token never reaches an audit file."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    policy = {
        **OPEN,
        "initial_access_tokens": {
            "required": True,
            "tokens": [{"name": "batch", "sha256": digest, "max_uses": N}],
        },
    }
    pair = replicas(policy)
    before = set(upstream.client_ids())
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    doomed = await burst(pair, [DOOMED] * N, bearer)
    assert statuses(doomed) == {400: N}
    assert_one_event_each(pair, doomed)

    results = await burst(pair, [CLIENT] * (3 * N), bearer)
    assert statuses(results) == {201: N, 401: 2 * N}
    new = set(upstream.client_ids()) - before
    assert len(new) == N
    assert new == created_ids(results)
    events = assert_one_event_each(pair, results)
    for _, status, headers, answer in results:
        event = events[headers["X-Request-ID"]]
        if status == 201:
            assert event["initial_access_token_name"] == "batch"
        else:
            assert answer["error"] == "invalid_token"
            assert "'batch'" in event["error_description"]
            assert (event["decision"], event["rule"]) == ("denied", "initial_access_token.used_up")
            assert event["upstream_status"] is None

    for replica in pair:
        text = replica.audit_path.read_text()
        assert TOKEN not in text
        assert digest not in text
    # Used up for both replicas alike.
    again = await burst(pair, [CLIENT, CLIENT], bearer)
    assert statuses(again) == {401: 2}


async def test_the_count_lives_in_redis_not_in_the_replicas(upstream, replicas, redis):
    """What the replicas counted is in Redis, under the gateway's prefix, and nowhere else:
    a third request sees the two others' counts whichever replica it reaches, and the Redis
    counters add up to what was allowed."""
    import redis as redis_py

    policy = {
        **OPEN,
        "rate_limits": [
            {"name": "shared", "key": "global", "limit": "3/hour", "count": "registrations"}
        ],
    }
    pair = replicas(policy)
    first = await burst(pair, [CLIENT, CLIENT])
    assert statuses(first) == {201: 2}
    with redis_py.Redis(port=redis.port) as client:
        keys = client.keys("dcr-gateway:rl:*")
        assert keys and all(k.startswith(b"dcr-gateway:rl::shared:") for k in keys), keys
        assert sum(int(client.get(k)) for k in keys) == 2
    third = await burst(pair, [CLIENT, CLIENT, CLIENT])
    assert statuses(third) == {201: 1, 429: 2}
    body = json.dumps(next(a for _, s, _, a in third if s == 429))
    assert "rate limit 'shared'" in body


async def test_a_used_up_token_is_named_in_the_audit_event(upstream, gateway_factory):
    """The audit event of a refused token names it (tokens/check.py: "the audit event names
    the token, never its secret"), whichever check refused it.  Racing replicas refuse a
    token's last use in one of two places: ``reserve_use`` (lost the race; the event names
    the token) or the ``max_uses`` pre-check in ``admit`` (the count was already
    full); the operator should not see a different event depending on who won a race.

    Here one gateway, ``max_uses: 1``: the second registration is refused by the pre-check.
    """
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    policy = {
        **OPEN,
        "initial_access_tokens": {
            "tokens": [
                {"name": "once", "sha256": digest, "max_uses": 1},
                {
                    "name": "old",
                    "sha256": hashlib.sha256(b"expired-token-0123456789").hexdigest(),
                    "expires": "2020-01-01T00:00:00Z",
                },
            ]
        },
    }
    gateway = await gateway_factory(upstream.url, policy=policy)
    async with aiohttp.ClientSession() as session:
        for token in (TOKEN, TOKEN, "expired-token-0123456789"):
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(gateway.url + "/reg", json=CLIENT, headers=headers) as r:
                await r.read()
    first, used_up, expired = gateway.registrations()
    assert (first["status"], first["initial_access_token_name"]) == (201, "once")
    assert used_up["rule"] == "initial_access_token.used_up"
    assert expired["rule"] == "initial_access_token.expired"
    assert (used_up["initial_access_token_name"], expired["initial_access_token_name"]) == (
        "once",
        "old",
    )
