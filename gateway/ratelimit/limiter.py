"""Applying the policy's rate limits to one registration request.

All rules of the policy are checked and counted in one atomic storage step (one Redis round
trip, :meth:`~gateway.storage.Storage.windows_acquire`): either every window admits the
request and it is counted in each, or none counts it and the answer is 429.

* ``count: attempts`` rules count every registration request that reaches them, allowed or
  refused by the policy; a request refused by a rate limit itself is not counted, so a
  client that keeps retrying is let in again as the window slides.
* ``count: registrations`` rules apply only to requests the policy allowed.  Their unit is
  *reserved* before the request is forwarded (so replicas racing for the last unit cannot
  both win) and given back when the upstream does not create the client; when the outcome
  is unknown (a timeout after the request was sent) the unit stays taken, erring towards
  fewer clients, never more.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gateway import rules
from gateway.errors import OAuthError
from gateway.policy.model import OnStorageError, Policy, RateCount, RateRule
from gateway.ratelimit.keys import RateFacts, bucket, storage_key
from gateway.storage import Storage, StorageError, WindowCheck
from gateway.storage.windows import admits, retry_after


@dataclass(slots=True)
class Reservation:
    """What one request took from the limits, to give back if it does not count."""

    storage: Storage
    counted: tuple[str, ...] = ()

    async def release(self) -> None:
        if not self.counted:
            return
        counted, self.counted = self.counted, ()
        with contextlib.suppress(StorageError):  # else the unit stays taken: fewer, not more
            await self.storage.windows_release(counted)


@dataclass(frozen=True, slots=True)
class _Planned:
    rule: RateRule
    check: WindowCheck


def plan(
    policy_rules: Sequence[RateRule], facts: RateFacts, scope: str, registering: bool
) -> list[_Planned]:
    """The window checks of one request: every window of every rule that applies."""
    planned = []
    for rule in policy_rules:
        if rule.count is RateCount.REGISTRATIONS and not registering:
            continue
        value = bucket(rule.key, facts)
        if value is None:
            continue
        for index, window in enumerate(rule.windows):
            key = storage_key(scope, rule.name, index, value)
            planned.append(_Planned(rule, WindowCheck(key, window.amount, window.seconds)))
    return planned


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def acquire(
        self,
        policy: Policy,
        facts: RateFacts,
        *,
        scope: str,
        registering: bool,
        now: float | None = None,
    ) -> tuple[Reservation, str | None]:
        """Check and count one request; raise 429 (``rate_limit.<name>``) when a window is
        full, 503 when the store fails and the policy fails closed.  Returns what was taken
        of ``registrations`` rules, and ``"fail_open"`` when the store failed and the
        request goes on unlimited."""
        planned = plan(policy.rate_limits, facts, scope, registering)
        if not planned:
            return Reservation(self.storage), None
        checks = [p.check for p in planned]
        try:
            result = await self.storage.windows_acquire(checks, time.time() if now is None else now)
        except StorageError as exc:
            if policy.on_storage_error is OnStorageError.FAIL_OPEN:
                return Reservation(self.storage), "fail_open"
            raise rules.storage_unavailable() from exc
        if not result.allowed:
            raise _refusal(planned, result.states)
        reserved = {p.check.key for p in planned if p.rule.count is RateCount.REGISTRATIONS}
        counted = tuple(k for k in result.counted if k.rsplit(":", 1)[0] in reserved)
        return Reservation(self.storage, counted), None


def _refusal(planned: list[_Planned], states: Sequence[object]) -> OAuthError:
    """429 naming the first full rule, ``Retry-After`` the longest wait among full ones."""
    full = [
        (p, state)
        for p, state in zip(planned, states, strict=True)
        if not admits(state, p.check)  # type: ignore[arg-type]
    ]
    first = full[0][0].rule
    wait = max(retry_after(state, p.check) for p, state in full)  # type: ignore[arg-type]
    return rules.RATE_LIMITED.refuse_as(
        first.rule_id,
        f"too many registration requests: the rate limit '{first.name}' ({first.limit} "
        f"per {first.key.value}) is reached; retry after {wait} seconds",
        retry_after=wait,
    )
