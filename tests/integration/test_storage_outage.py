"""Redis goes away under a running gateway, and comes back.

A real redis-server of the test's own is terminated mid-run (or frozen with SIGSTOP, a Redis
that accepts connections but never answers).  Rate limits then follow the policy's
``on_storage_error``: ``fail_closed`` answers 503 ``temporarily_unavailable`` (rule
``storage.unavailable``), ``fail_open`` lets registrations through unlimited and says so in
the audit event (``storage_error: "fail_open"``).  Initial access tokens fail closed in both
modes: their use counts cannot be checked.  ``/-/readyz`` says 503 meanwhile.  When Redis is
started again on the same port, redis-py reconnects by itself and limits work again without
restarting the gateway.

The test servers run without persistence (``--save '' --appendonly no``), so a restarted
Redis is empty: counting resumes from zero, and what was counted before the outage is lost.
A production Redis with persistence (RDB/AOF) or a replica would keep it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

LIMIT = 3
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
CLIENT = {
    "client_name": "Outage Agent",
    "redirect_uris": ["http://127.0.0.1:43210/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "application_type": "native",
}
COUNTED_TOKEN = "outage-counted-token-0123456789abcdef"  # has max_uses
FREE_TOKEN = "outage-free-token-0123456789abcdef"  # no max_uses: still a use is reserved
UNKNOWN_TOKEN = "outage-unknown-token-0123456789abcdef"  # looked up among issued tokens
#: The redis client's socket timeout (gateway.storage.redis.RedisStorage's default).
SOCKET_TIMEOUT = 2.0
#: A refused connection is answered at once; this leaves room for a slow CI machine.
REFUSED_BOUND = 1.0


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def policy(on_storage_error: str) -> dict[str, Any]:
    return {
        **OPEN,
        "on_storage_error": on_storage_error,
        "rate_limits": [
            {"name": "few", "key": "global", "limit": f"{LIMIT}/hour", "count": "registrations"}
        ],
        "initial_access_tokens": {
            "required": False,
            "tokens": [
                {"name": "counted", "sha256": sha256(COUNTED_TOKEN), "max_uses": 100},
                {"name": "free", "sha256": sha256(FREE_TOKEN)},
            ],
        },
    }


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start again on the same port."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        if server.process is not None:
            with_signal(server, signal.SIGCONT)  # in case a test left it frozen
        server.stop()


def with_signal(server: RedisServer, sig: signal.Signals) -> None:
    assert server.process is not None
    os.kill(server.process.pid, sig)


Answer = tuple[int, dict[str, str], dict[str, Any], float]


async def register(session: aiohttp.ClientSession, url: str, token: str | None = None) -> Answer:
    """One registration: status, headers, JSON answer, and how long it took."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    async with session.post(url + "/reg", json=CLIENT, headers=headers) as response:
        answer = await response.json()
        return response.status, dict(response.headers), answer, time.monotonic() - started


async def readyz(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url + "/-/readyz") as response:
        return response.status, await response.json()


async def wait_ready(
    session: aiohttp.ClientSession, url: str, status: int, timeout: float = 8.0
) -> dict[str, Any]:
    """Poll ``/-/readyz`` (its answer is cached for a second) until it answers ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        got, body = await readyz(session, url)
        if got == status or time.monotonic() > deadline:
            assert got == status, body
            return body
        await asyncio.sleep(0.1)


def event_of(gateway, headers: dict[str, str]) -> dict[str, Any]:
    events = [e for e in gateway.registrations() if e["request_id"] == headers["X-Request-ID"]]
    assert len(events) == 1, events
    return events[0]


def assert_storage_unavailable(gateway, answer: Answer) -> None:
    """503 ``temporarily_unavailable`` naming ``storage.unavailable``, audited, never
    forwarded."""
    status, headers, body, _ = answer
    assert status == 503, body
    assert body["error"] == "temporarily_unavailable"
    assert body["error_description"].endswith("(rule storage.unavailable)")
    assert headers["Cache-Control"] == "no-store"
    event = event_of(gateway, headers)
    assert (event["decision"], event["rule"], event["status"]) == (
        "error",
        "storage.unavailable",
        503,
    )
    assert event["error"] == "temporarily_unavailable"
    assert event["upstream_status"] is None
    assert event["storage_error"] is None  # nothing was let through


async def assert_limit_counts_from_zero(session, gateway, upstream) -> None:
    """After Redis came back empty: exactly LIMIT registrations more, then 429."""
    before = await upstream.aclient_count(session)
    answers = [await register(session, gateway.url) for _ in range(LIMIT + 1)]
    assert [a[0] for a in answers] == [201] * LIMIT + [429]
    assert await upstream.aclient_count(session) == before + LIMIT
    assert event_of(gateway, answers[-1][1])["rule"] == "rate_limit.few"
    assert all(event_of(gateway, a[1])["storage_error"] is None for a in answers)


async def test_fail_closed_refuses_while_redis_is_down_and_recovers(
    upstream, gateway_factory, redis
):
    """``fail_closed``: while Redis is down every registration is refused at once with 503
    ``storage.unavailable`` (a refused connection, not a timeout) and nothing reaches the
    upstream; readiness says 503.  Redis restarted on the same port: readiness is 200 again
    and the limit is enforced again, counting from zero (no persistence), without a
    gateway restart."""
    gateway = await gateway_factory(upstream.url, policy=policy("fail_closed"), storage=redis.url)
    async with aiohttp.ClientSession() as session:
        assert (await wait_ready(session, gateway.url, 200))["checks"]["storage"] == "ok"
        assert (await register(session, gateway.url))[0] == 201

        redis.stop()
        body = await wait_ready(session, gateway.url, 503)
        assert body["checks"]["storage"] == "unreachable"
        assert body["checks"]["upstream"].startswith("ok")  # only the storage is missing
        before = await upstream.aclient_count(session)
        for _ in range(LIMIT + 2):
            answer = await register(session, gateway.url)
            assert_storage_unavailable(gateway, answer)
            assert answer[3] < REFUSED_BOUND, answer[3]
        assert await upstream.aclient_count(session) == before

        redis.start()  # same port, empty
        assert (await wait_ready(session, gateway.url, 200))["checks"]["storage"] == "ok"
        await assert_limit_counts_from_zero(session, gateway, upstream)


async def test_fail_open_lets_registrations_through_unlimited_and_says_so(
    upstream, gateway_factory, redis
):
    """``fail_open``: while Redis is down registrations are forwarded, more than the limit
    allows, each audited ``storage_error: "fail_open"``; they stay fast (a refused
    connection).  Once Redis is back the limit holds again and events say nothing of
    storage."""
    gateway = await gateway_factory(upstream.url, policy=policy("fail_open"), storage=redis.url)
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, gateway.url, 200)
        redis.stop()
        await wait_ready(session, gateway.url, 503)
        before = await upstream.aclient_count(session)
        answers = [await register(session, gateway.url) for _ in range(LIMIT + 2)]
        assert [a[0] for a in answers] == [201] * (LIMIT + 2)
        assert await upstream.aclient_count(session) == before + LIMIT + 2
        for _, headers, body, seconds in answers:
            event = event_of(gateway, headers)
            assert (event["decision"], event["storage_error"]) == ("allowed", "fail_open")
            assert event["client_id"] == body["client_id"]
            assert seconds < REFUSED_BOUND, seconds

        redis.start()
        await wait_ready(session, gateway.url, 200)
        await assert_limit_counts_from_zero(session, gateway, upstream)


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_initial_access_tokens_fail_closed_in_both_modes(
    upstream, gateway_factory, redis, mode
):
    """A registration carrying an initial access token is refused with 503 while Redis is
    down, whatever ``on_storage_error`` says: a token with ``max_uses`` (its count cannot be
    read), one without (its use cannot be recorded) and an unknown one (the issued tokens
    cannot be searched) alike.  None reaches the upstream.  After the restart the tokens
    work again."""
    gateway = await gateway_factory(upstream.url, policy=policy(mode), storage=redis.url)
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, gateway.url, 200)
        redis.stop()
        before = await upstream.aclient_count(session)
        for token in (COUNTED_TOKEN, FREE_TOKEN, UNKNOWN_TOKEN):
            answer = await register(session, gateway.url, token)
            status, headers, body, seconds = answer
            assert status == 503, (token, body)
            assert body["error"] == "temporarily_unavailable"
            assert body["error_description"].endswith("(rule storage.unavailable)")
            event = event_of(gateway, headers)
            assert (event["rule"], event["status"]) == ("storage.unavailable", 503)
            assert event["upstream_status"] is None
            assert seconds < REFUSED_BOUND
        assert await upstream.aclient_count(session) == before
        for secret in (COUNTED_TOKEN, FREE_TOKEN, UNKNOWN_TOKEN):
            assert secret not in gateway.audit_text()

        redis.start()
        await wait_ready(session, gateway.url, 200)
        assert (await register(session, gateway.url, COUNTED_TOKEN))[0] == 201
        assert (await register(session, gateway.url, FREE_TOKEN))[0] == 201
        unknown = await register(session, gateway.url, UNKNOWN_TOKEN)
        assert (unknown[0], unknown[2]["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    ("mode", "bound"),
    [
        # One storage call (the limits) waits for the socket timeout.
        ("fail_closed", SOCKET_TIMEOUT + 1.0),
        # The limits wait for the timeout; the client, forwarded and created, is then not
        # recorded in the registry (no second wait): one timeout too.
        ("fail_open", SOCKET_TIMEOUT + 1.0),
    ],
)
async def test_a_frozen_redis_costs_at_most_the_socket_timeout(
    upstream, gateway_factory, redis, mode, bound
):
    """A Redis that accepts connections but never answers (SIGSTOP) is noticed by the
    socket timeout, not waited on forever: the registration is answered (503, or let through
    under ``fail_open``) within the timeout plus a margin, and readiness says 503 within its
    own check timeout.  Thawed, it serves again without a gateway restart, with what it
    counted before (the process kept its memory)."""
    gateway = await gateway_factory(upstream.url, policy=policy(mode), storage=redis.url)
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, gateway.url, 200)
        assert (await register(session, gateway.url))[0] == 201

        with_signal(redis, signal.SIGSTOP)
        started = time.monotonic()
        status, body = await readyz(session, gateway.url)
        if status == 200:  # the cached answer from before the freeze
            await asyncio.sleep(1.1)
            started = time.monotonic()
            status, body = await readyz(session, gateway.url)
        assert (status, body["checks"]["storage"]) == (503, "unreachable")
        assert time.monotonic() - started < SOCKET_TIMEOUT + 1.0

        answer = await register(session, gateway.url)
        if mode == "fail_closed":
            assert_storage_unavailable(gateway, answer)
        else:
            assert answer[0] == 201
            assert event_of(gateway, answer[1])["storage_error"] == "fail_open"
        assert answer[3] < bound, answer[3]

        with_signal(redis, signal.SIGCONT)
        await wait_ready(session, gateway.url, 200)
        # One was counted before the freeze.  The script sent during it timed out, but may
        # still run once Redis thaws (it was in the socket's buffer): an unknown outcome,
        # which may cost one unit, never grant one.
        answers = []
        while len(answers) <= LIMIT and (not answers or answers[-1][0] == 201):
            answers.append(await register(session, gateway.url))
        codes = [a[0] for a in answers]
        assert codes[-1] == 429
        assert codes.count(201) in (LIMIT - 2, LIMIT - 1), codes
