"""``dcr-gateway check -c CONFIG`` or ``check --policy FILE``: every problem of the config
and its policies (or of one policy file) at once, then warnings about what loads but is
probably a mistake (:mod:`gateway.policy.lint`), as ``opa check`` does for Rego.

Warnings do not fail the check unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from gateway.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    load,
    load_policy_file,
    source_arguments,
)
from gateway.config.yamlsource import Document, Problem, load_file
from gateway.policy.model import Policy


def _arguments(parser: argparse.ArgumentParser) -> None:
    source_arguments(parser, many=True)
    parser.add_argument(
        "--strict", action="store_true", help="fail (exit 1) when there are warnings too"
    )
    parser.add_argument(
        "--today",
        metavar="YYYY-MM-DD",
        help="the date managed entries' verified dates are compared with (default: today)",
    )


def _summary(policy: Policy) -> str:
    rp = policy.redirect_uris
    return (
        f"{policy.source} (mode {policy.mode.value}; managed entries "
        f"{len(rp.managed_ids)}; allow/managed patterns {len(rp.allowed)}; "
        f"block patterns {len(rp.blocked)}; loopback {rp.loopback.name.lower()}; "
        f"revision {policy.revision[:12]})"
    )


def _controls(policy: Policy) -> list[str]:
    """One line per rate limit, then storage failure handling and the tokens."""
    lines = [
        f"  rate limit {rule.name}: {rule.limit} per {rule.key.value}, counting {rule.count.value}"
        for rule in policy.rate_limits
    ]
    if policy.rate_limits:
        lines.append(f"  on storage error: {policy.on_storage_error.value}")
    tokens = policy.initial_access_tokens
    if tokens.tokens or tokens.required:
        required = "required" if tokens.required else "not required"
        lines.append(f"  initial access tokens: {len(tokens.tokens)} listed, {required}")
    lines += _lifecycle(policy)
    return lines


def _lifecycle(policy: Policy) -> list[str]:
    """Approval, cleanup and quotas, when the policy sets them."""
    lines = []
    approval = policy.approval
    if approval.required:
        auto = ", ".join(a.value for a in approval.auto_approve) or "nothing"
        lines.append(
            f"  approval: required (auto-approve {auto}); pending clients deleted after "
            f"{_duration(approval.pending_ttl)}"
        )
    cleanup = policy.cleanup
    if cleanup.idle_after is not None or cleanup.never_used_after is not None:
        parts = []
        if cleanup.idle_after is not None:
            parts.append(f"idle for {_duration(cleanup.idle_after)}")
        if cleanup.never_used_after is not None:
            parts.append(f"never used after {_duration(cleanup.never_used_after)}")
        lines.append("  cleanup: delete clients " + " or ".join(parts))
    quotas = policy.quotas
    if quotas.enabled:
        caps = []
        if quotas.max_clients_per_vendor is not None:
            caps.append(f"{quotas.max_clients_per_vendor} per vendor")
        if quotas.max_clients is not None:
            caps.append(f"{quotas.max_clients} in all")
        how = quotas.on_full.value
        if quotas.on_full.value == "evict_idle":
            how += f" (clients idle for {_duration(quotas.evict_idle_after)} or more)"
        lines.append(f"  quotas: {', '.join(caps)} live clients; when full: {how}")
    return lines


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check(args: argparse.Namespace) -> int:
    try:
        today = date.fromisoformat(args.today) if args.today else date.today()
    except ValueError:
        print(f"error: --today {args.today!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return EXIT_USAGE
    if args.config is None:
        return _check_policies(args.policy, today, strict=args.strict)
    loaded = load(args.config)
    if loaded is None:
        return EXIT_FAIL
    print(f"config ok: {args.config}")
    print(f"policy ok: {_summary(loaded.policy)}")
    for line in _controls(loaded.policy):
        print(line)
    warnings = _warnings(loaded.policy, today)
    for tenant, policy in sorted(loaded.policies.tenants.items()):
        print(f"tenant {tenant}: policy ok: {_summary(policy)}")
        for line in _controls(policy):
            print(line)
        warnings += _warnings(policy, today)
    print(f"policy revision: {loaded.policy.revision}")
    return _verdict(warnings, strict=args.strict)


def _check_policies(paths: list[Path], today: date, *, strict: bool) -> int:
    """``--policy FILE``: each file on its own, with the shipped managed list."""
    ok = True
    warnings: list[Problem] = []
    for path in paths:
        loaded = load_policy_file(path)
        if loaded is None:
            ok = False
            continue
        policy, document = loaded
        print(f"policy ok: {_summary(policy)}")
        for line in _controls(policy):
            print(line)
        print(f"policy revision: {policy.revision}")
        warnings += _warnings(policy, today, document)
    if not ok:
        return EXIT_FAIL
    return _verdict(warnings, strict=strict)


def _warnings(policy: Policy, today: date, document: Document | None = None) -> list[Problem]:
    from gateway.policy.lint import lint

    if document is None:  # read again for the lines (a deployment's policies, per tenant)
        document = _document(policy.source)
    return lint(policy, today, document)


def _document(name: str) -> Document | None:
    problems: list[Problem] = []
    document = load_file(Path(name), problems)
    return None if problems else document


def _verdict(warnings: list[Problem], *, strict: bool) -> int:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings:
        count = len(warnings)
        print(f"{count} warning{'s' if count != 1 else ''}", file=sys.stderr)
    return EXIT_FAIL if strict and warnings else EXIT_OK


COMMAND = Command(
    "check",
    "validate the config and its policies (or one policy file); list every problem",
    _arguments,
    check,
)
