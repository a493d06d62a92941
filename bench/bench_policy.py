"""The policy benchmarks run with: the shipped ``policies/default.yaml``, its rate limits
and quotas raised out of reach.

A benchmark sends thousands of registrations a minute from one address, which the shipped
per-IP limit (rightly) refuses. Raising every limit's amount, while keeping the same rules
and windows, keeps what a registration costs (the same storage step) and takes away only
the 429s.  Quotas likewise: the same counters are reserved per registration, none fills.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
UNREACHABLE = 10**9


def _raise(limit: str) -> str:
    return re.sub(r"^\s*\d+", str(UNREACHABLE), limit.strip())


def write_bench_policy(workdir: Path, *, rate_limits: bool = True) -> Path:
    """The default policy in ``workdir``, limits unreachable (or, ``rate_limits=False``,
    none at all, the baseline that shows what limits cost)."""
    data = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    if rate_limits:
        for rule in data.get("rate_limits", []):
            rule["limit"] = ";".join(_raise(part) for part in str(rule["limit"]).split(";"))
    else:
        data.pop("rate_limits", None)
    quotas = data.get("quotas") or {}
    for key in ("max_clients_per_vendor", "max_clients"):
        if key in quotas:
            quotas[key] = UNREACHABLE
    path = workdir / ("policy.yaml" if rate_limits else "policy-no-limits.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
