"""``dcr-gateway diff -c CONFIG NEW_POLICY --against AUDIT_LOG``: which recorded decisions
a candidate policy would change, before it goes live (:mod:`gateway.audit.replay`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command, config_argument, load
from gateway.config.yamlsource import ConfigError


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("policy", type=Path, help="the candidate policy file")
    parser.add_argument(
        "--against",
        required=True,
        type=Path,
        help="an audit log (JSON lines, as audit.sink writes them) to replay",
    )
    parser.add_argument(
        "--tenant",
        help="the candidate replaces this tenant's (Keycloak realm's) policy, not the default",
    )
    parser.add_argument(
        "--fail-on-change", action="store_true", help="exit 1 when any decision would change"
    )
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")


def diff(args: argparse.Namespace) -> int:
    from gateway.audit.replay import CANNOT_REPLAY, Report, read_events, replay
    from gateway.cli.common import report as report_problems
    from gateway.policy.loader import load_policy

    loaded = load(args.config)
    if loaded is None:
        return EXIT_USAGE
    try:
        candidate = load_policy(args.policy)
    except ConfigError as exc:
        report_problems(exc)
        return EXIT_USAGE
    tenants = loaded.policies.tenants
    if args.tenant is not None and args.tenant not in tenants:
        print(f"error: tenant {args.tenant!r} has no policy of its own", file=sys.stderr)
        return EXIT_USAGE

    def applies_to(tenant: object) -> bool:
        if args.tenant is not None:
            return tenant == args.tenant
        return tenant is None or tenant not in tenants

    result = Report()
    try:
        with args.against.open(encoding="utf-8", errors="replace") as lines:
            replay(read_events(lines, result), candidate, applies_to, result)
    except OSError as exc:
        print(f"error: cannot read {args.against}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    counts = result.counts()
    if args.json:
        out = {
            "candidate_revision": candidate.revision,
            "replayed": result.replayed,
            "unchanged": result.unchanged,
            "changed": counts,
            "skipped": result.skipped,
            "recorded_revisions": result.revisions,
            "changes": [change.fields() for change in result.changes],
            "not_replayed": CANNOT_REPLAY,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for change in result.changes:
            event = change.event
            who = event.get("client_name") or event.get("client_id") or "-"
            print(
                f"{change.kind:<12} {event.get('timestamp', '-')} {event.get('event')} "
                f"{event.get('request_id', '-')} {who!r}: {change.before[0]} "
                f"({change.before[1]}) -> {change.after[0]} ({change.after[1]})"
            )
        total = len(result.changes)
        print(
            f"replayed {result.replayed} decisions against {args.policy} (revision "
            f"{candidate.revision[:12]}): {total} would change ({counts['allow->deny']} "
            f"allow->deny, {counts['deny->allow']} deny->allow, {counts['rule changed']} "
            f"rule changed), {result.unchanged} unchanged"
        )
        for reason, count in sorted(result.skipped.items()):
            print(f"skipped {count}: {reason}")
        print(f"note: {CANNOT_REPLAY}")
    return EXIT_FAIL if args.fail_on_change and result.changes else EXIT_OK


COMMAND = Command(
    "diff", "replay an audit log through a candidate policy: what would change", _arguments, diff
)
