"""Applying a policy's rate limits (gateway.ratelimit.limiter), on the in-memory store and
on a store that fails, which is what every outcome depends on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gateway.errors import RateLimited, TemporarilyUnavailable
from gateway.policy.loader import policy_from_mapping
from gateway.policy.model import Policy
from gateway.ratelimit.keys import RateFacts
from gateway.ratelimit.limiter import RateLimiter, plan
from gateway.storage import MemoryStorage, StorageError, WindowCheck, WindowResult

NOW = 1_800_000_000.0  # a window boundary for minutes and hours
FACTS = RateFacts(client_ip="198.51.100.7", client_name="My App")


def policy(*rules: dict[str, Any], on_storage_error: str = "fail_closed") -> Policy:
    return policy_from_mapping(
        {"version": 1, "rate_limits": list(rules), "on_storage_error": on_storage_error}
    )


PER_IP = {"name": "per-ip", "key": "client_ip", "limit": "2/minute"}
CREATED = {"name": "created", "key": "global", "limit": "1/hour", "count": "registrations"}


async def test_attempts_are_counted_until_the_limit() -> None:
    limiter = RateLimiter(MemoryStorage())
    p = policy(PER_IP)
    for _ in range(2):
        await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(p, FACTS, scope="", registering=True, now=NOW + 1)
    assert refused.value.rule == "rate_limit.per-ip"
    # Not before the next window (59 s), and then until this one's 2 weigh less than 1:
    # 2 * (1 - e/60) + 1 <= 2 from e = 30 s on.
    assert refused.value.headers()["Retry-After"] == "89"
    # Another caller has its own bucket; the refused request was not counted.
    other = RateFacts(client_ip="198.51.100.8")
    await limiter.acquire(p, other, scope="", registering=False, now=NOW + 1)
    await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW + 120)


async def test_registrations_rules_ignore_refused_requests_and_give_units_back() -> None:
    limiter = RateLimiter(MemoryStorage())
    p = policy(CREATED)
    for _ in range(5):  # refused by the policy: not counted
        reservation, _ = await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW)
        assert reservation.counted == ()
    reservation, _ = await limiter.acquire(p, FACTS, scope="", registering=True, now=NOW)
    assert len(reservation.counted) == 1
    await reservation.release()  # the upstream did not create the client
    await reservation.release()  # twice is once
    kept, _ = await limiter.acquire(p, FACTS, scope="", registering=True, now=NOW + 1)
    with pytest.raises(RateLimited):
        await limiter.acquire(p, FACTS, scope="", registering=True, now=NOW + 2)
    assert kept.counted


async def test_one_full_rule_counts_the_request_nowhere() -> None:
    store = MemoryStorage()
    limiter = RateLimiter(store)
    p = policy(PER_IP, {"name": "tight", "key": "global", "limit": "1/minute"})
    await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW + 1)
    assert refused.value.rule == "rate_limit.tight"
    # per-ip saw one request, not two: a second caller's first request still fits it twice.
    await limiter.acquire(
        policy(PER_IP), FACTS, scope="", registering=False, now=NOW + 2
    )  # per-ip now at 2
    with pytest.raises(RateLimited):
        await limiter.acquire(policy(PER_IP), FACTS, scope="", registering=False, now=NOW + 3)


async def test_scopes_count_apart() -> None:
    limiter = RateLimiter(MemoryStorage())
    p = policy({"name": "one", "key": "global", "limit": "1/hour"})
    await limiter.acquire(p, FACTS, scope="", registering=False, now=NOW)
    await limiter.acquire(p, FACTS, scope="acme", registering=False, now=NOW)
    with pytest.raises(RateLimited):
        await limiter.acquire(p, FACTS, scope="acme", registering=False, now=NOW)


def test_every_window_of_every_applying_rule_is_planned() -> None:
    p = policy(
        {"name": "a", "key": "client_ip", "limit": "2/minute;10/hour"},
        {"name": "b", "key": "software_id", "limit": "5/hour"},  # no software_id: skipped
        CREATED,
    )
    planned = plan(p.rate_limits, FACTS, "", registering=False)
    assert [(x.rule.name, x.check.limit, x.check.seconds) for x in planned] == [
        ("a", 2, 60),
        ("a", 10, 3600),
    ]
    planned = plan(p.rate_limits, FACTS, "", registering=True)
    assert [x.rule.name for x in planned] == ["a", "a", "created"]


class BrokenStorage(MemoryStorage):
    async def windows_acquire(self, checks: Sequence[WindowCheck], now: float) -> WindowResult:
        raise StorageError("connection refused")


async def test_a_failing_store_fails_closed_by_default() -> None:
    with pytest.raises(TemporarilyUnavailable) as refused:
        await RateLimiter(BrokenStorage()).acquire(
            policy(PER_IP), FACTS, scope="", registering=True
        )
    assert (refused.value.status, refused.value.rule) == (503, "storage.unavailable")


async def test_a_failing_store_fails_open_when_the_policy_says_so() -> None:
    reservation, note = await RateLimiter(BrokenStorage()).acquire(
        policy(PER_IP, on_storage_error="fail_open"), FACTS, scope="", registering=True
    )
    assert (reservation.counted, note) == ((), "fail_open")


async def test_no_rules_touch_no_store() -> None:
    reservation, note = await RateLimiter(BrokenStorage()).acquire(
        policy(), FACTS, scope="", registering=True
    )
    assert (reservation.counted, note) == ((), None)
