"""Policy test cases as data: a policy, a request, the expected decision.

A security team proves a policy does what they mean by writing cases, not Python; the
project's own suite and ``dcr-gateway test-policy DIR`` run the same files.  A case file:

.. code-block:: yaml

    policy: {mode: allowlist, redirect_uris: {allow: ["https://app.example.com/cb"]}}
    # or: policy_file: ../policies/default.yaml   (relative to this file)
    cases:
      - name: the approved app registers
        request: {redirect_uris: ["https://app.example.com/cb"]}
        # or request_json: '{"redirect_uris": [] , "redirect_uris": []}' for raw bodies
        expect:
          decision: allowed          # allowed | denied | would_deny (report-only)
          rule: allow.custom
          error: invalid_redirect_uri   # the wire error code (denials)
          status: 400
          matched: ["custom:https://app.example.com/cb"]
          vendor: claude
          dropped: []
          forwarded: {...}            # the exact metadata forwarded
          forwarded_includes: {...}   # a subset of it
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.yamlsource import ConfigError, Problem, load_file
from gateway.policy.decision import Decision
from gateway.policy.judge import judge, judge_body
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import Policy
from gateway.policy.report_only import Resolution, resolve

_EXPECT_KEYS = {
    "decision",
    "rule",
    "error",
    "status",
    "matched",
    "vendor",
    "dropped",
    "forwarded",
    "forwarded_includes",
}


@dataclass(frozen=True, slots=True)
class Case:
    file: Path
    name: str
    policy: Policy
    request: dict[str, Any] | None
    request_json: str | None
    expect: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file.stem}::{self.name}"


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    decision: Decision
    failures: tuple[str, ...]
    #: The decision acted on and the reported one, under report-only.
    resolution: Resolution | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def evaluate(policy: Policy, request: dict[str, Any] | None, request_json: str | None) -> Decision:
    """What the gateway would decide for this body: hygiene first, then the policy."""
    if request_json is not None:
        return judge_body(policy, request_json.encode("utf-8"))
    return judge(policy, dict(request or {}))


def load_cases(path: Path) -> list[Case]:
    """Cases of one file; a malformed file raises :class:`ConfigError`."""
    problems: list[Problem] = []
    document = load_file(path, problems)
    data = document.data
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ConfigError([Problem("cases", "a case file needs a list of cases", str(path))])
    if "policy_file" in data:
        policy = load_policy((path.parent / str(data["policy_file"])).resolve())
    elif isinstance(data.get("policy"), dict):
        policy = policy_from_mapping(data["policy"], f"{path}#policy")
    else:
        raise ConfigError([Problem("policy", "give policy (inline) or policy_file", str(path))])
    cases = []
    for index, raw in enumerate(data["cases"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("expect"), dict):
            raise ConfigError(
                [Problem(f"cases[{index}]", "a case needs request and expect", str(path))]
            )
        unknown = set(raw["expect"]) - _EXPECT_KEYS
        if unknown:
            raise ConfigError(
                [Problem(f"cases[{index}].expect", f"unknown keys {sorted(unknown)}", str(path))]
            )
        request_json = raw.get("request_json")
        if request_json is None and not isinstance(raw.get("request"), dict):
            raise ConfigError([Problem(f"cases[{index}]", "request must be a mapping", str(path))])
        cases.append(
            Case(
                file=path,
                name=str(raw.get("name", f"case {index}")),
                policy=policy,
                request=raw.get("request"),
                request_json=request_json,
                expect=raw["expect"],
            )
        )
    return cases


def discover(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.rglob("*.yaml"))


def evaluate_resolved(
    policy: Policy, request: dict[str, Any] | None, request_json: str | None
) -> Resolution:
    """:func:`evaluate`, with report-only applied as the gateway applies it: a refusal of a
    report-only group becomes ``would_deny`` unless an enforced rule still refuses."""
    decision = evaluate(policy, request, request_json)
    return resolve(policy, decision, lambda view: evaluate(view, request, request_json))


def run_case(case: Case) -> Outcome:
    resolution = evaluate_resolved(case.policy, case.request, case.request_json)
    # The policy's verdict: the reported refusal for would_deny, else what is acted on.
    decision = resolution.reported or resolution.acting
    forwarded = resolution.acting
    expect = case.expect
    failures: list[str] = []

    def compare(what: str, actual: object, wanted: object) -> None:
        if actual != wanted:
            failures.append(f"{what}: expected {wanted!r}, got {actual!r}")

    if "decision" in expect:
        compare("decision", resolution.outcome, expect["decision"])
    if "rule" in expect:
        compare("rule", decision.rule, expect["rule"])
    if "error" in expect:
        compare("error", decision.error.error if decision.error else None, expect["error"])
    if "status" in expect:
        compare("status", decision.error.status if decision.error else None, expect["status"])
    if "matched" in expect:
        compare("matched", list(decision.matched), list(expect["matched"]))
    if "vendor" in expect:
        compare("vendor", decision.vendor, expect["vendor"])
    if "dropped" in expect:
        compare("dropped", list(decision.dropped_redirect_uris), list(expect["dropped"]))
    if "forwarded" in expect:
        compare("forwarded", forwarded.metadata, expect["forwarded"])
    for key, wanted in (expect.get("forwarded_includes") or {}).items():
        compare(f"forwarded.{key}", forwarded.metadata.get(key, "<absent>"), wanted)
    if not failures and decision.allowed is False and "rule" not in expect:
        failures.append("a denial must name the rule it expects")
    return Outcome(case, decision, tuple(failures), resolution)


def decision_fields(decision: Decision) -> dict[str, Any]:
    """A decision as JSON-ready fields (``explain --json``)."""
    return {
        "decision": "allowed" if decision.allowed else "denied",
        "rule": decision.rule,
        "error": decision.error.error if decision.error else None,
        "status": decision.error.status if decision.error else None,
        "description": decision.description,
        "matched": list(decision.matched),
        "vendor": decision.vendor,
        "dropped_redirect_uris": list(decision.dropped_redirect_uris),
        "notes": list(decision.notes),
        "forwarded": decision.metadata if decision.allowed else None,
    }


def describe(decision: Decision) -> str:
    """A human account of a decision, as ``explain`` prints it."""
    lines = [
        f"decision: {'allowed' if decision.allowed else 'denied'}",
        f"rule:     {decision.rule}",
    ]
    if decision.error is not None:
        lines.append(f"error:    {decision.error.status} {decision.error.error}")
    lines.append(f"reason:   {decision.description}")
    lines.append(f"matched:  {', '.join(decision.matched) or '-'}")
    lines.append(f"vendor:   {decision.vendor or '-'}")
    if decision.dropped_redirect_uris:
        lines.append(f"dropped:  {', '.join(decision.dropped_redirect_uris)}")
    for note in decision.notes:
        lines.append(f"note:     {note}")
    if decision.allowed:
        lines.append("forwarded metadata:")
        lines.append(json.dumps(decision.metadata, indent=2, ensure_ascii=False))
    return "\n".join(lines)
