"""Which initial access token a registration carries (gateway.tokens.check), against the
in-memory store: policy tokens, issued ones, expiry, uses and their reservation."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from gateway.errors import InvalidToken, TemporarilyUnavailable
from gateway.policy.loader import policy_from_mapping
from gateway.policy.model import Policy
from gateway.storage import MemoryStorage, StorageError
from gateway.tokens.check import admit, identify, release_use, reserve_use
from gateway.tokens.issued import IssuedTokens

NOW = 1_800_000_000.0


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def policy(required: bool = False) -> Policy:
    return policy_from_mapping(
        {
            "version": 1,
            "initial_access_tokens": {
                "required": required,
                "tokens": [
                    {"name": "partner", "sha256": sha("partner-secret"), "max_uses": 2},
                    {"name": "old", "sha256": sha("old-secret"), "expires": "2020-01-01T00:00:00Z"},
                    {"name": "free", "sha256": sha("free-secret")},
                ],
            },
        }
    )


async def check(
    values: Sequence[str],
    p: Policy,
    store: MemoryStorage,
    tenant: str | None = None,
    now: float = NOW,
):
    """Both steps, as the registration endpoint takes them."""
    presented = await identify(list(values), p, scope="", tenant=tenant, storage=store)
    if presented is not None:
        await admit(presented, store, now=now)
    return presented


async def test_no_token_is_fine_unless_required() -> None:
    store = MemoryStorage()
    assert await check([], policy(), store) is None
    with pytest.raises(InvalidToken) as refused:
        await check([], policy(required=True), store)
    assert refused.value.rule == "initial_access_token.missing"


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("nobody-knows-me", "initial_access_token.unknown"),
        ("old-secret", "initial_access_token.expired"),
        ("PARTNER-SECRET", "initial_access_token.unknown"),  # tokens are case-sensitive
    ],
)
async def test_refused_tokens_say_why(token: str, rule: str) -> None:
    with pytest.raises(InvalidToken) as refused:
        await check([f"Bearer {token}"], policy(), MemoryStorage())
    assert refused.value.rule == rule
    assert token not in refused.value.description


async def test_uses_are_reserved_counted_and_given_back() -> None:
    store = MemoryStorage()
    p = policy()
    presented = await check(["Bearer partner-secret"], p, store)
    assert presented is not None and (presented.name, presented.max_uses) == ("partner", 2)
    await reserve_use(presented, store)
    await release_use(presented, store)  # the upstream did not create the client
    await reserve_use(presented, store)
    await reserve_use(presented, store)
    with pytest.raises(InvalidToken) as refused:
        await reserve_use(presented, store)  # a racing request lost
    assert refused.value.rule == "initial_access_token.used_up"
    with pytest.raises(InvalidToken) as refused:
        await check(["Bearer partner-secret"], p, store)
    assert refused.value.rule == "initial_access_token.used_up"
    # Without max_uses, uses are counted but never run out.
    free = await check(["Bearer free-secret"], p, store)
    for _ in range(5):
        await reserve_use(free, store)


async def test_issued_tokens_are_found_by_hash_and_scoped_to_a_tenant() -> None:
    store = MemoryStorage()
    issued = IssuedTokens(store)
    made = await issued.create("ops", expires_in=60, max_uses=None, tenant="acme", now=NOW)
    assert made is not None
    record, secret = made
    assert record.expires_at == NOW + 60
    presented = await check([f"Bearer {secret}"], policy(), store, tenant="acme")
    assert presented is not None and presented.name == "ops"
    with pytest.raises(InvalidToken) as refused:
        await check([f"Bearer {secret}"], policy(), store, tenant="other")
    assert refused.value.rule == "initial_access_token.unknown"
    with pytest.raises(InvalidToken) as refused:
        await check([f"Bearer {secret}"], policy(), store, tenant="acme", now=NOW + 61)
    assert refused.value.rule == "initial_access_token.expired"
    assert await issued.revoke("ops") is True
    with pytest.raises(InvalidToken) as refused:
        await check([f"Bearer {secret}"], policy(), store, tenant="acme")
    assert refused.value.rule == "initial_access_token.unknown"


async def test_issued_names_are_unique_and_listing_shows_no_secret() -> None:
    store = MemoryStorage()
    issued = IssuedTokens(store)
    made = await issued.create("ops", expires_in=None, max_uses=3, tenant=None, now=NOW)
    assert made is not None
    assert await issued.create("ops", expires_in=None, max_uses=3, tenant=None) is None
    listed = await issued.list()
    assert [(t.name, t.max_uses, uses) for t, uses in listed] == [("ops", 3, 0)]
    assert made[1] not in repr(listed)
    assert await issued.revoke("ops") and not await issued.revoke("ops")
    assert await issued.list() == []


class BrokenStorage(MemoryStorage):
    async def get(self, key: str) -> bytes | None:
        raise StorageError("down")

    async def counter_get(self, key: str) -> int:
        raise StorageError("down")


@pytest.mark.parametrize("token", ["partner-secret", "unknown-so-looked-up"])
async def test_token_checks_fail_closed_when_storage_fails(token: str) -> None:
    with pytest.raises(TemporarilyUnavailable) as refused:
        await check([f"Bearer {token}"], policy(), BrokenStorage())
    assert refused.value.rule == "storage.unavailable"


async def test_a_token_without_limits_needs_no_storage() -> None:
    presented = await check(["Bearer free-secret"], policy(), BrokenStorage())
    assert presented is not None and presented.name == "free"
