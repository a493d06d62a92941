"""Quotas: how many live clients a vendor, and a tenant, may have (Keycloak's "Max Clients",
per vendor and per tenant).

A registration reserves one unit of its vendor's and its tenant's counters before it is
forwarded (atomic capped increments, so replicas cannot both take the last unit), and gives
it back when the upstream does not create the client.  When a counter is full:

* ``on_full: reject``: 403 ``access_denied`` (``quota.max_clients_per_vendor`` or
  ``quota.max_clients``);
* ``on_full: evict_idle``: the least recently used client of that vendor (for the tenant's
  cap: of the tenant) whose last use, or registration when never used, is older than
  ``evict_idle_after`` is deleted upstream first, then the registration goes on.  A client
  that re-registers on every connection (claude.ai does) thus stays at its quota: each new
  registration replaces the stalest one, which is the one its users abandoned.  A client
  used within ``evict_idle_after`` is never evicted, so a burst of new users cannot log out
  active ones: when every client is that fresh, the registration is refused instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gateway import rules
from gateway.audit.events import AuditRecord
from gateway.errors import OAuthError
from gateway.policy.model import OnQuotaFull, QuotaPolicy
from gateway.registry.entry import ClientEntry
from gateway.registry.jobs import audit_removal
from gateway.registry.removal import remove
from gateway.registry.store import QuotaCaps
from gateway.state import Gateway

#: Eviction tries at most this many victims for one registration.
MAX_EVICTIONS = 3


@dataclass(slots=True)
class QuotaHold:
    """One unit reserved for a registration; :meth:`release` gives it back."""

    gateway: Gateway
    tenant: str | None
    vendor_key: str
    held: bool = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.gateway.registry.release(self.tenant, self.vendor_key)


async def reserve(
    gateway: Gateway,
    quotas: QuotaPolicy,
    tenant: str | None,
    vendor_key: str,
    record: AuditRecord,
    now: float,
) -> QuotaHold | None:
    """Reserve a unit (evicting when the policy says so), or raise the quota refusal.
    ``None`` when the policy has no quotas.  Storage errors propagate."""
    if not quotas.enabled:
        return None
    caps = QuotaCaps(quotas.max_clients_per_vendor, quotas.max_clients)
    registry = gateway.registry
    passed_over: set[str] = set()
    for _ in range(MAX_EVICTIONS + 1):
        full = await registry.reserve(tenant, vendor_key, caps)
        if full is None:
            return QuotaHold(gateway, tenant, vendor_key)
        if quotas.on_full is not OnQuotaFull.EVICT_IDLE:
            raise _refusal(full, quotas)
        victim = await _victim(
            gateway,
            tenant,
            vendor_key if full == "vendor" else None,
            quotas.evict_idle_after,
            now,
            passed_over,
        )
        if victim is None:
            raise _refusal(full, quotas, evicting=True)
        outcome = await remove(gateway, victim, reason="evicted", now=now)
        audit_removal(gateway, victim, "evicted", outcome, actor=None)
        if outcome.done:
            record.extra.setdefault("evicted", []).append(victim.client_id)
            gateway.gate.forget(victim.tenant, victim.client_id)
        else:
            passed_over.add(victim.client_id)
    raise _refusal(full, quotas, evicting=True)


async def _victim(
    gateway: Gateway,
    tenant: str | None,
    vendor_key: str | None,
    idle_after: float,
    now: float,
    passed_over: Collection[str] = (),
) -> ClientEntry | None:
    """The least recently used live client (of the vendor, or of the tenant) idle enough."""
    registry = gateway.registry
    used = await registry.all_last_used()
    best: tuple[float, ClientEntry] | None = None
    for entry in await registry.entries():
        if not entry.live or entry.deleting or entry.tenant != tenant:
            continue
        if entry.client_id in passed_over:
            continue
        if vendor_key is not None and entry.vendor_key != vendor_key:
            continue
        last = used.get((entry.tenant, entry.client_id), entry.registered_at)
        if now - last < idle_after:
            continue
        if best is None or last < best[0]:
            best = (last, entry)
    return None if best is None else best[1]


def _refusal(full: str, quotas: QuotaPolicy, *, evicting: bool = False) -> OAuthError:
    tail = " and no client of it is idle long enough to be evicted" if evicting else ""
    if full == "vendor":
        return rules.QUOTA_VENDOR.refuse(
            f"this application has reached its quota of {quotas.max_clients_per_vendor} "
            f"registered clients{tail}"
        )
    return rules.QUOTA_TOTAL.refuse(
        f"this authorization server has reached its quota of {quotas.max_clients} "
        f"registered clients{tail}"
    )
