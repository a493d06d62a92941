"""The lifecycle job: expire pending clients, clean up unused ones, retry failed deletes.

Every ``registry.job_interval`` one replica (the one holding the ``lock:lifecycle`` lock in
storage, which expires on its own if that replica dies) reads the registry and, for each
client, asks :func:`due` whether it must go, by its tenant's policy:

* ``pending_expired``: pending for longer than ``approval.pending_ttl``;
* ``never_used``: active, never used at the authorization or token endpoint, registered
  longer ago than ``cleanup.never_used_after``;
* ``idle``: active, last used longer ago than ``cleanup.idle_after``;
* a delete that failed before, once its backoff has passed.

Each is removed through :func:`gateway.registry.removal.remove` (upstream first; a failed
upstream delete is retried, never recorded as done) and audited as ``client.cleanup``.
The run also re-seals tokens sealed with an older key and corrects the quota counters.
With ``registry.dry_run`` (or ``run_once(dry_run=True)``, the admin API's dry run) nothing
is changed: the answer and the audit event say what would have been done.  A storage error
ends the run; the next one starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from gateway.audit.logging import log
from gateway.policy.model import Policy
from gateway.registry.entry import ClientEntry, Status
from gateway.registry.removal import Outcome, remove
from gateway.state import GATEWAY, Gateway
from gateway.storage import StorageError

LOCK = "lock:lifecycle"
CLEANUP_EVENT = "client.cleanup"
RUN_EVENT = "lifecycle.run"


def due(entry: ClientEntry, last_used: float | None, policy: Policy, now: float) -> str | None:
    """Why ``entry`` must be removed now, or ``None``.  Pure."""
    if entry.deleting:
        if entry.next_attempt_at is None or entry.next_attempt_at <= now:
            return entry.reason or "retry"
        return None
    if entry.status is Status.PENDING:
        if now - entry.registered_at >= policy.approval.pending_ttl:
            return "pending_expired"
        return None
    if entry.status is not Status.ACTIVE:
        return None
    cleanup = policy.cleanup
    if last_used is None:
        limit = cleanup.never_used_after
        if limit is not None and now - entry.registered_at >= limit:
            return "never_used"
        return None
    if cleanup.idle_after is not None and now - last_used >= cleanup.idle_after:
        return "idle"
    return None


@dataclass(slots=True)
class RunReport:
    dry_run: bool
    ran: bool = True
    examined: int = 0
    #: ``client_id``, tenant, reason and result of every client that was due.
    actions: list[dict[str, object]] = field(default_factory=list)
    resealed: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "ran": self.ran,
            "examined": self.examined,
            "actions": self.actions,
            "resealed": self.resealed,
            "error": self.error,
        }


async def run_once(
    gateway: Gateway, *, dry_run: bool | None = None, now: float | None = None
) -> RunReport:
    """One run under the lock; ``ran`` is false when another replica holds it."""
    dry = gateway.settings.registry.dry_run if dry_run is None else dry_run
    report = RunReport(dry_run=dry)
    storage = gateway.storage
    holder = secrets.token_hex(8).encode("ascii")
    ttl = max(60.0, gateway.settings.registry.job_interval * 2)
    try:
        if not await storage.set_new(LOCK, holder, ttl):
            report.ran = False
            return report
    except StorageError as exc:
        report.ran, report.error = False, f"storage: {exc}"[:200]
        return report
    try:
        await _run(gateway, report, dry, holder, ttl, time.time() if now is None else now)
    except StorageError as exc:
        report.error = f"storage: {exc}"[:200]
        log().warning("lifecycle_run_failed", reason=report.error)
    finally:
        with contextlib.suppress(StorageError):
            await storage.delete_if(LOCK, holder)
    if report.actions or report.error:
        gateway.audit.emit(RUN_EVENT, _run_fields(report))
    return report


async def _run(
    gateway: Gateway, report: RunReport, dry: bool, holder: bytes, ttl: float, now: float
) -> None:
    registry = gateway.registry
    entries = await registry.entries()
    gateway.metrics.registry_counts(status_counts(entries))
    used = await registry.all_last_used()
    report.examined = len(entries)
    for entry in entries:
        policy = gateway.policies.for_tenant(entry.tenant)
        reason = due(entry, used.get((entry.tenant, entry.client_id)), policy, now)
        if reason is None:
            continue
        # Used since the snapshot was read?  Asked again for the few that are due.
        reason = due(entry, await registry.last_used(entry.tenant, entry.client_id), policy, now)
        if reason is None:
            continue
        if not await gateway.storage.extend_if(LOCK, holder, ttl):
            report.error = "the lifecycle lock was lost; another replica continues"
            return
        final = Status.REJECTED if entry.status is Status.REJECTED else Status.DELETED
        outcome = await remove(gateway, entry, reason=reason, final=final, dry_run=dry, now=now)
        report.actions.append(
            {
                "client_id": entry.client_id,
                "tenant": entry.tenant,
                "vendor": entry.vendor,
                "reason": reason,
                "result": outcome.result,
                "error": outcome.error,
            }
        )
        if not dry:
            gateway.gate.forget(entry.tenant, entry.client_id)
            audit_removal(gateway, entry, reason, outcome, actor=None)
    if dry:
        return
    for entry in await registry.entries():
        if entry.sealed_token is None:
            continue
        fresh = gateway.sealer.reseal(entry.sealed_token)
        if fresh is not None and await registry.replace(entry, entry.with_(sealed_token=fresh)):
            report.resealed += 1
    final = await registry.entries()
    gateway.metrics.registry_counts(status_counts(final))
    await registry.reconcile(final)


def status_counts(entries: list[ClientEntry]) -> dict[str, int]:
    """Clients by status (``pending``, ``active``, ``rejected``, ``deleted``), for
    ``dcr_gateway_registry_clients``."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status.value] = counts.get(entry.status.value, 0) + 1
    return counts


def audit_removal(
    gateway: Gateway,
    entry: ClientEntry,
    reason: str,
    outcome: Outcome,
    *,
    actor: str | None,
    event: str = CLEANUP_EVENT,
) -> None:
    """One event per removal attempt: what was removed, why, by whom, and how it went."""
    decision = {
        "deleted": "deleted",
        "rejected": "rejected",
        "would_delete": "would_delete",
    }.get(outcome.result, "error" if outcome.result == "failed" else "skipped")
    gateway.audit.emit(
        event,
        {
            "decision": decision,
            "result": outcome.result,
            "reason": reason,
            "client_id": entry.client_id,
            "tenant": entry.tenant,
            "vendor": entry.vendor,
            "source": entry.source.value,
            "client_name": entry.client_name,
            "status_before": entry.status.value,
            "upstream_status": outcome.upstream_status,
            "error": outcome.error,
            "attempts": outcome.entry.delete_attempts if outcome.entry is not None else None,
            "admin_token_name": actor,
        },
    )


def _run_fields(report: RunReport) -> dict[str, object]:
    results: dict[str, int] = {}
    for action in report.actions:
        key = f"{action['reason']}:{action['result']}"
        results[key] = results.get(key, 0) + 1
    return {
        "decision": "would_delete" if report.dry_run else "ran",
        "dry_run": report.dry_run,
        "examined": report.examined,
        "results": results,
        "resealed": report.resealed,
        "error": report.error,
    }


async def lifecycle_job(app: web.Application) -> AsyncIterator[None]:
    """The job as a background task of the application (a ``cleanup_ctx``)."""
    gateway = app[GATEWAY]
    interval = gateway.settings.registry.job_interval

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await run_once(gateway)
            except Exception:  # the job must outlive any one bad run
                log().exception("lifecycle_run_crashed")

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
