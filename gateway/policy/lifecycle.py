"""Reading the policy's lifecycle controls: ``approval``, ``cleanup`` and ``quotas``.

They are policy (each tenant's policy carries its own; ``check`` shows them), applied by
the gateway around its decision and by its background jobs (:mod:`gateway.registry`).
Durations use the config's syntax (``1h``, ``30d``).
"""

from __future__ import annotations

from typing import Any

from gateway.config.reader import Reader, as_bool, as_choice, as_duration, as_int
from gateway.config.yamlsource import KeyPath
from gateway.policy import spec
from gateway.policy.model import (
    ApprovalPolicy,
    AutoApprove,
    CleanupPolicy,
    OnQuotaFull,
    QuotaPolicy,
)

_APPROVAL = spec.APPROVAL.names
_CLEANUP = spec.CLEANUP.names
_QUOTAS = spec.QUOTAS.names
MIN_CLEANUP_SECONDS = spec.MIN_CLEANUP_SECONDS


def read_approval(r: Reader, top: dict[str, Any]) -> ApprovalPolicy:
    path: KeyPath = ("approval",)
    section = r.section(top.get("approval"), path, _APPROVAL)
    required = r.get(section, path, "required", as_bool, False)
    auto = r.items(
        section.get("auto_approve", []),
        (*path, "auto_approve"),
        as_choice(*(a.value for a in AutoApprove)),
    )
    ttl = r.get(section, path, "pending_ttl", as_duration, 3600.0)
    return ApprovalPolicy(
        required=required,
        auto_approve=tuple(dict.fromkeys(AutoApprove(a) for a in auto if a)),
        pending_ttl=ttl,
    )


def read_cleanup(r: Reader, top: dict[str, Any]) -> CleanupPolicy:
    path: KeyPath = ("cleanup",)
    section = r.section(top.get("cleanup"), path, _CLEANUP)
    values = {}
    for key in sorted(_CLEANUP):
        value = r.get(section, path, key, as_duration, None)
        if value is not None and value < MIN_CLEANUP_SECONDS:
            r.problem((*path, key), f"must be at least {MIN_CLEANUP_SECONDS:g}s")
            value = None
        values[key] = value
    return CleanupPolicy(**values)


def read_quotas(r: Reader, top: dict[str, Any]) -> QuotaPolicy:
    path: KeyPath = ("quotas",)
    section = r.section(top.get("quotas"), path, _QUOTAS)
    per_vendor = r.get(section, path, "max_clients_per_vendor", as_int(1, 10**9), None)
    total = r.get(section, path, "max_clients", as_int(1, 10**9), None)
    on_full = r.get(section, path, "on_full", as_choice(*(o.value for o in OnQuotaFull)), "reject")
    idle = r.get(section, path, "evict_idle_after", as_duration, 900.0)
    if per_vendor is not None and total is not None and per_vendor > total:
        r.problem(
            (*path, "max_clients_per_vendor"),
            f"{per_vendor} is more than max_clients ({total}): it could never be reached",
        )
    return QuotaPolicy(per_vendor, total, OnQuotaFull(on_full), idle)
