"""``dcr-gateway explain``: the decision on one request, and why (after ``opa eval``).

``explain -c CONFIG REQUEST`` decides with a deployment's policy (``--tenant`` for a realm's);
``explain --policy FILE REQUEST`` with one policy file, no deployment needed.  ``REQUEST`` is
a registration body (JSON) or ``-`` for standard input.  A Client ID Metadata Document is
explained with ``--cimd-url URL`` (the URL it is fetched from), or recognised by its
``client_id`` being an https URL; it is judged by
:func:`gateway.cimd.judge.judge_document`, exactly as the gateway judges a fetched document,
without fetching anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    load,
    load_policy_file,
    source_arguments,
)
from gateway.policy.decision import Decision
from gateway.policy.model import Policy, RateCount
from gateway.ratelimit.keys import RateFacts, bucket


def _arguments(parser: argparse.ArgumentParser) -> None:
    source_arguments(parser)
    parser.add_argument(
        "request",
        nargs="?",
        default="-",
        metavar="REQUEST",
        help="a registration request body or a metadata document (JSON); - for stdin (the default)",
    )
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--cimd-url",
        metavar="URL",
        help="judge REQUEST as the Client ID Metadata Document fetched from URL (without "
        "it, a document whose client_id is an https URL is judged as fetched from there)",
    )
    parser.add_argument(
        "--tenant", help="decide with this tenant's (Keycloak realm's) policy, as configured"
    )
    parser.add_argument("--client-ip", help="the caller's address, for the rate limit buckets")


def _read(request: str) -> bytes | None:
    if request == "-":
        if sys.stdin.isatty():
            print("error: give REQUEST (a JSON file), or - and the JSON on stdin", file=sys.stderr)
            return None
        return sys.stdin.buffer.read()
    try:
        return Path(request).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {request}: {exc}", file=sys.stderr)
        return None


def _policy(args: argparse.Namespace) -> tuple[Policy, bool] | None:
    """The policy that decides, and whether the deployment turned CIMD off."""
    if args.config is None:
        if args.tenant is not None:
            print("error: --tenant needs -c CONFIG (tenants are configured there)", file=sys.stderr)
            return None
        loaded_policy = load_policy_file(args.policy)
        return None if loaded_policy is None else (loaded_policy[0], False)
    loaded = load(args.config)
    if loaded is None:
        return None
    tenants = loaded.policies.tenants
    if args.tenant is not None and args.tenant not in tenants:
        twins = [t for t in tenants if t.casefold() == args.tenant.casefold()]
        if twins:
            # The gateway answers such a realm 404 (rule tenant.case_mismatch).
            print(
                f"error: realm names are case-sensitive: {args.tenant!r} is not {twins[0]!r}",
                file=sys.stderr,
            )
            return None
        print(f"note: tenant {args.tenant!r} has no policy of its own", file=sys.stderr)
    return loaded.policies.for_tenant(args.tenant), not loaded.settings.cimd.enabled


def _cimd_url(args: argparse.Namespace, body: bytes) -> str | None:
    """The URL to judge the body as a metadata document from, if it is one."""
    if args.cimd_url is not None:
        return str(args.cimd_url)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    client_id = data.get("client_id") if isinstance(data, dict) else None
    if isinstance(client_id, str) and client_id.startswith("https://"):
        return client_id
    return None


def _judge_document(policy: Policy, url: str, body: bytes) -> Decision:
    from gateway import rules
    from gateway.cimd.fetch import FetchError, parse_document
    from gateway.cimd.judge import judge_document, url_refusal

    refusal = url_refusal(url)
    if refusal is not None:
        return Decision.deny(refusal, {})
    try:
        document = parse_document(body)
    except FetchError as exc:
        kind = exc.rule.rsplit(".", 1)[-1]
        return Decision.deny(rules.CIMD_FETCH.refuse_as(f"cimd.fetch.{kind}", exc.description), {})
    return judge_document(policy, url, document)


def explain(args: argparse.Namespace) -> int:
    from gateway.policy.cases import decision_fields, describe
    from gateway.policy.judge import judge_body
    from gateway.policy.report_only import resolve
    from gateway.registry.entry import Status
    from gateway.registry.record import first_status

    chosen = _policy(args)
    if chosen is None:
        return EXIT_USAGE
    policy, cimd_off = chosen
    body = _read(args.request)
    if body is None:
        return EXIT_USAGE
    url = _cimd_url(args, body)
    notes = []

    def judged(view: Policy) -> Decision:
        return judge_body(view, body) if url is None else _judge_document(view, url, body)

    resolution = resolve(policy, judged(policy), judged)
    decision = resolution.reported or resolution.acting
    if url is not None and cimd_off:
        from gateway import rules

        notes.append(
            f"cimd.enabled is off in this config; with it on, the policy would decide "
            f"{'allowed' if decision.allowed else 'denied'} ({decision.rule})"
        )
        decision = Decision.deny(
            rules.CIMD_DISABLED.refuse(
                "this server does not take Client ID Metadata Documents as client ids"
            ),
            decision.metadata,
        )
        refused = decision
        resolution = resolve(policy, refused, lambda _view: refused)
    acting = resolution.acting
    limits = counted_by(policy, acting, args.tenant, args.client_ip) if url is None else []
    # Without a token (an explained request carries none).
    starts = first_status(policy, managed=acting.vendor is not None, had_token=False)
    if args.json:
        fields = decision_fields(decision)
        fields["judged_as"] = "registration" if url is None else "client_id_metadata_document"
        if url is not None:
            fields["client_id"] = url
        fields["notes"] = [*fields["notes"], *notes]
        if resolution.outcome == "would_deny":
            fields["decision"] = "would_deny"
            fields["report_only_group"] = str(resolution.group)
            fields["forwarded"] = acting.metadata
        fields["rate_limits"] = limits
        fields["initial_access_token_required"] = policy.initial_access_tokens.required
        if acting.allowed:
            fields["starts_as"] = starts.value
        print(json.dumps(fields, indent=2, ensure_ascii=False))
    else:
        if url is not None:
            print(f"judged:   as the Client ID Metadata Document at {url}")
        text = describe(decision)
        if resolution.outcome == "would_deny":
            text = text.replace("decision: denied", "decision: would_deny", 1)
        print(text)
        for note in notes:
            print(f"note:     {note}")
        if resolution.outcome == "would_deny":
            print(
                f"report:   would_deny: report_only ({resolution.group}), so it is forwarded "
                f"(the enforced rules allow it: {acting.rule})"
            )
            print("forwarded metadata:")
            print(json.dumps(acting.metadata, indent=2, ensure_ascii=False))
        for limit in limits:
            print(
                f"limit:    {limit['name']} ({limit['limit']} per {limit['key']}, counting "
                f"{limit['count']}): bucket {limit['bucket']}"
            )
        if url is None and policy.initial_access_tokens.required:
            print("token:    an initial access token is required (Authorization: Bearer)")
        if acting.allowed and starts is Status.PENDING:
            print("status:   pending: it waits for an administrator's approval (approval)")
    return EXIT_OK if acting.allowed else EXIT_FAIL


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


COMMAND = Command(
    "explain",
    "show the decision for one registration request or metadata document, and why",
    _arguments,
    explain,
)
