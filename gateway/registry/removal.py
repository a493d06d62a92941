"""Deleting a registered client upstream, once, and recording it.

Every way a client leaves (pending too long, idle, never used, evicted by a quota, rejected
or deleted by an administrator) goes through :func:`remove`, so the rules hold for all of
them:

* one replica at a time works on a client (a claim in storage with an expiry);
* the upstream delete is RFC 7592 §2.3 ``DELETE`` on the client's configuration endpoint
  with its stored registration access token; ``204``/``200`` is success, ``404`` means the
  upstream has no such client any more (also done);
* a client whose upstream delete failed is **not** marked deleted: it keeps its status, is
  flagged ``deleting`` with the error, and the lifecycle job retries later with backoff
  (1, 2, 4 ... minutes, at most 6 hours);
* a rejection takes effect at once (the gateway refuses the client at the authorization
  and token endpoints from then on), whatever the upstream says;
* the quota counters lose the client exactly once, when it stops being live.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multidict import CIMultiDict
from yarl import URL

from gateway.errors import OAuthError
from gateway.registry.entry import ClientEntry, Status
from gateway.registry.store import field_of
from gateway.storage import StorageError

if TYPE_CHECKING:
    from gateway.state import Gateway

#: Retry backoff: 60 s doubled per failed attempt, at most this.
MAX_BACKOFF = 6 * 3600.0
CLAIM_TTL = 120.0


@dataclass(frozen=True, slots=True)
class Outcome:
    #: ``deleted`` | ``rejected`` | ``failed`` | ``busy`` (another replica is on it) |
    #: ``changed`` (its status changed meanwhile) | ``would_delete`` (dry run)
    result: str
    entry: ClientEntry | None
    upstream_status: int | None = None
    error: str | None = None
    #: The failure was the gateway's storage, not the upstream.
    storage_failed: bool = False

    @property
    def done(self) -> bool:
        return self.result in ("deleted", "rejected")


def backoff(attempts: int) -> float:
    return min(60.0 * 2.0 ** min(max(0, attempts - 1), 32), MAX_BACKOFF)


async def remove(
    gateway: Gateway,
    entry: ClientEntry,
    *,
    reason: str,
    final: Status = Status.DELETED,
    actor: str | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> Outcome:
    """Delete ``entry``'s client upstream and mark it ``final`` (deleted or rejected)."""
    now = time.time() if now is None else now
    if dry_run:
        return Outcome("would_delete", entry)
    storage, registry = gateway.storage, gateway.registry
    claim_key = "reg-claim:" + field_of(entry.tenant, entry.client_id)
    claim = secrets.token_hex(8).encode("ascii")
    if not await storage.set_new(claim_key, claim, CLAIM_TTL):
        return Outcome("busy", entry)
    try:
        fresh = await registry.get(entry.tenant, entry.client_id)
        if fresh is None or fresh.status is Status.DELETED or fresh != entry:
            return Outcome("changed", fresh)
        if fresh.status is Status.REJECTED and final is Status.DELETED and not fresh.deleting:
            return Outcome("changed", fresh)
        current = fresh
        if final is Status.REJECTED and fresh.status is not Status.REJECTED:
            # A rejection holds at once, before (and whatever) the upstream answers.
            current = _marked(fresh, Status.REJECTED, reason, actor, now).with_(deleting=True)
            if not await registry.replace(fresh, current):
                return Outcome("changed", fresh)
            if fresh.live:
                await registry.release(fresh.tenant, fresh.vendor_key)
        status, error = await delete_upstream(gateway, current)
        if status in (200, 204, 404):
            done = _marked(current, final, reason, actor, now).with_(
                deleting=False,
                sealed_token=None,
                next_attempt_at=None,
                last_error=None,
            )
            if not await registry.replace(current, done):
                return Outcome("changed", current)
            if current.live:
                await registry.release(current.tenant, current.vendor_key)
            return Outcome(final.value, done, status)
        attempts = current.delete_attempts + 1
        failed = current.with_(
            deleting=True,
            reason=reason if current.status is not Status.REJECTED else current.reason,
            delete_attempts=attempts,
            next_attempt_at=now + backoff(attempts),
            last_error=error,
        )
        await registry.replace(current, failed)
        return Outcome("failed", failed, status, error)
    except StorageError as exc:
        return Outcome("failed", entry, None, f"storage: {exc}"[:200], storage_failed=True)
    finally:
        with contextlib.suppress(StorageError):  # else the claim expires on its own
            await storage.delete_if(claim_key, claim)


def _marked(
    entry: ClientEntry, status: Status, reason: str, actor: str | None, now: float
) -> ClientEntry:
    """``entry`` in ``status``; when that is a change, when, why and by whom too."""
    if entry.status is status:
        return entry
    return entry.with_(status=status, status_changed_at=now, reason=reason, changed_by=actor)


async def delete_upstream(gateway: Gateway, entry: ClientEntry) -> tuple[int | None, str | None]:
    """RFC 7592 §2.3 ``DELETE`` with the stored token: (status, error)."""
    token = gateway.sealer.unseal(entry.sealed_token)
    if entry.management_path is None:
        return None, "the upstream named no registration_client_uri for this client"
    if token is None:
        why = (
            "no registration access token is kept (registry.key_env is not set)"
            if not gateway.sealer.enabled
            else "the stored registration access token cannot be read with the configured keys"
        )
        return None, why
    headers = CIMultiDict({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    url = gateway.upstream.url_for(URL(entry.management_path, encoded=True))
    try:
        async with gateway.upstream.send("DELETE", url, headers) as answer:
            await answer.read()
            status = answer.status
    except OAuthError as exc:
        return None, exc.description
    if status in (200, 204, 404):
        return status, None
    return status, f"the authorization server answered {status} to DELETE"
