"""``dcr-gateway explain -c CONFIG REQUEST``: the decision on one request, and why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command, config_argument, load
from gateway.policy.decision import Decision
from gateway.policy.model import Policy, RateCount
from gateway.ratelimit.keys import RateFacts, bucket


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("request", type=Path, help="a registration request body (JSON)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--tenant", help="decide with this tenant's (Keycloak realm's) policy, as configured"
    )
    parser.add_argument("--client-ip", help="the caller's address, for the rate limit buckets")


def explain(args: argparse.Namespace) -> int:
    from gateway.policy.cases import decision_fields, describe
    from gateway.policy.judge import judge_body
    from gateway.policy.report_only import resolve
    from gateway.registry.entry import Status
    from gateway.registry.record import first_status

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
    policy = loaded.policies.for_tenant(args.tenant)
    resolution = resolve(policy, judge_body(policy, body), lambda view: judge_body(view, body))
    decision = resolution.reported or resolution.acting
    limits = counted_by(policy, resolution.acting, args.tenant, args.client_ip)
    # Without a token (an explained request carries none).
    starts = first_status(policy, managed=resolution.acting.vendor is not None, had_token=False)
    if args.json:
        fields = decision_fields(decision)
        if resolution.outcome == "would_deny":
            fields["decision"] = "would_deny"
            fields["report_only_group"] = str(resolution.group)
            fields["forwarded"] = resolution.acting.metadata
        fields["rate_limits"] = limits
        fields["initial_access_token_required"] = policy.initial_access_tokens.required
        if resolution.acting.allowed:
            fields["starts_as"] = starts.value
        print(json.dumps(fields, indent=2, ensure_ascii=False))
    else:
        text = describe(decision)
        if resolution.outcome == "would_deny":
            text = text.replace("decision: denied", "decision: would_deny", 1)
        print(text)
        if resolution.outcome == "would_deny":
            print(
                f"report:   would_deny: report_only ({resolution.group}), so it is forwarded "
                f"(the enforced rules allow it: {resolution.acting.rule})"
            )
            print("forwarded metadata:")
            print(json.dumps(resolution.acting.metadata, indent=2, ensure_ascii=False))
        for limit in limits:
            print(
                f"limit:    {limit['name']} ({limit['limit']} per {limit['key']}, counting "
                f"{limit['count']}): bucket {limit['bucket']}"
            )
        if policy.initial_access_tokens.required:
            print("token:    an initial access token is required (Authorization: Bearer)")
        if resolution.acting.allowed and starts is Status.PENDING:
            print("status:   pending: it waits for an administrator's approval (approval)")
    return EXIT_OK if resolution.acting.allowed else EXIT_FAIL


def counted_by(
    policy: Policy, decision: Decision, tenant: str | None, client_ip: str | None
) -> list[dict[str, Any]]:
    """The rate limits that would count this request, and the bucket of each."""
    metadata = decision.metadata
    facts = RateFacts(
        client_ip=client_ip or "<the caller's address>",
        software_id=_text(metadata.get("software_id")),
        vendor=decision.vendor,
        client_name=_text(metadata.get("client_name")),
        token_name="<the token name>",  # noqa: S106 (a placeholder, not a secret)
        tenant=tenant,
    )
    out = []
    for rule in policy.rate_limits:
        if rule.count is RateCount.REGISTRATIONS and not decision.allowed:
            continue
        value = bucket(rule.key, facts)
        if value is None:
            continue
        out.append(
            {
                "name": rule.name,
                "key": rule.key.value,
                "limit": rule.limit,
                "count": rule.count.value,
                "bucket": value or "(one for all)",
            }
        )
    return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


COMMAND = Command("explain", "show the decision for one registration request", _arguments, explain)
