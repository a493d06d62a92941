"""``dcr-gateway check -c CONFIG``: every problem of the config and its policy, at once."""

from __future__ import annotations

import argparse

from gateway.cli.common import EXIT_FAIL, EXIT_OK, Command, config_argument, load


def check(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    if loaded is None:
        return EXIT_FAIL
    policy = loaded.policy
    rp = policy.redirect_uris
    print(f"config ok: {args.config}")
    print(
        f"policy ok: {policy.source} (mode {policy.mode.value}; managed entries "
        f"{len(rp.managed_ids)}; allow/managed patterns {len(rp.allowed)}; "
        f"block patterns {len(rp.blocked)}; loopback {rp.loopback.name.lower()})"
    )
    print(f"policy revision: {policy.revision}")
    return EXIT_OK


COMMAND = Command(
    "check", "validate the config and its policy; list every problem", config_argument, check
)
