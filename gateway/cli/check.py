"""``dcr-gateway check -c CONFIG``: every problem of the config and its policies, at once."""

from __future__ import annotations

import argparse

from gateway.cli.common import EXIT_FAIL, EXIT_OK, Command, config_argument, load
from gateway.policy.model import Policy


def _summary(policy: Policy) -> str:
    rp = policy.redirect_uris
    return (
        f"{policy.source} (mode {policy.mode.value}; managed entries "
        f"{len(rp.managed_ids)}; allow/managed patterns {len(rp.allowed)}; "
        f"block patterns {len(rp.blocked)}; loopback {rp.loopback.name.lower()}; "
        f"revision {policy.revision[:12]})"
    )


def check(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    if loaded is None:
        return EXIT_FAIL
    print(f"config ok: {args.config}")
    print(f"policy ok: {_summary(loaded.policy)}")
    for tenant, policy in sorted(loaded.policies.tenants.items()):
        print(f"tenant {tenant}: policy ok: {_summary(policy)}")
    print(f"policy revision: {loaded.policy.revision}")
    return EXIT_OK


COMMAND = Command(
    "check", "validate the config and its policies; list every problem", config_argument, check
)
