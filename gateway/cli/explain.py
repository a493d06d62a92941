"""``dcr-gateway explain -c CONFIG REQUEST``: the decision on one request, and why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command, config_argument, load


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("request", type=Path, help="a registration request body (JSON)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--tenant", help="decide with this tenant's (Keycloak realm's) policy, as configured"
    )


def explain(args: argparse.Namespace) -> int:
    from gateway.policy.cases import decision_fields, describe
    from gateway.policy.judge import judge_body

    loaded = load(args.config)
    if loaded is None:
        return EXIT_USAGE
    try:
        body = args.request.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.request}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tenants = loaded.policies.tenants
    if args.tenant is not None and args.tenant not in tenants:
        twins = [t for t in tenants if t.casefold() == args.tenant.casefold()]
        if twins:
            # The gateway answers such a realm 404 (rule tenant.case_mismatch).
            print(
                f"error: realm names are case-sensitive: {args.tenant!r} is not {twins[0]!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"note: tenant {args.tenant!r} has no policy of its own", file=sys.stderr)
    decision = judge_body(loaded.policies.for_tenant(args.tenant), body)
    if args.json:
        print(json.dumps(decision_fields(decision), indent=2, ensure_ascii=False))
    else:
        print(describe(decision))
    return EXIT_OK if decision.allowed else EXIT_FAIL


COMMAND = Command("explain", "show the decision for one registration request", _arguments, explain)
