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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import rules
from gateway.config.reader import did_you_mean
from gateway.config.yamlsource import ConfigError, Document, KeyPath, Problem, load_file
from gateway.policy.decision import Decision
from gateway.policy.judge import judge, judge_body
from gateway.policy.loader import load_policy, read_policy
from gateway.policy.model import Policy
from gateway.policy.report_only import Resolution, resolve

_EXPECT_KEYS = frozenset(
    {
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
)
_CASE_KEYS = frozenset({"name", "request", "request_json", "expect"})
_FILE_KEYS = frozenset({"policy", "policy_file", "cases"})
#: What ``test-policy`` reads when given a folder.
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Case:
    file: Path
    name: str
    policy: Policy
    request: dict[str, Any] | None
    request_json: str | None
    expect: dict[str, Any]
    #: The line the case starts on (``None`` for cases built in code).
    line: int | None = None

    @property
    def id(self) -> str:
        return f"{self.file.stem}::{self.name}"

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    decision: Decision | None
    failures: tuple[str, ...]
    #: The decision acted on and the reported one, under report-only.
    resolution: Resolution | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class CaseFile:
    """One case file: the cases that could be read, and a problem (with ``file:line``) for
    each that could not, or for the file, when its policy cannot be loaded."""

    path: Path
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def evaluate(policy: Policy, request: dict[str, Any] | None, request_json: str | None) -> Decision:
    """What the gateway would decide for this body: hygiene first, then the policy."""
    if request_json is not None:
        return judge_body(policy, request_json.encode("utf-8"))
    return judge(policy, dict(request or {}))


def load_cases(path: Path) -> list[Case]:
    """Cases of one file; a malformed file or case raises :class:`ConfigError`."""
    read = read_case_file(path)
    if read.problems:
        raise ConfigError(read.problems)
    return read.cases


def read_case_file(path: Path) -> CaseFile:
    """Every case of one file that can be read; every problem, each at its ``file:line``.

    A broken case does not stop the others (``test-policy`` keeps going); a file whose YAML
    or policy is broken has no cases."""
    out = CaseFile(path)
    document = load_file(path, out.problems)
    data = document.data
    if out.problems:
        return out

    def problem(key: KeyPath, message: str, hint: str | None = None) -> None:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".")
        out.problems.append(Problem(where or "(top level)", message, document.location(key), hint))

    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        problem((), "a case file needs a list of cases (cases: [...])")
        return out
    for key in data:
        if key not in _FILE_KEYS:
            problem(
                (key,),
                "unknown key (known keys: cases, policy, policy_file)",
                did_you_mean(key, _FILE_KEYS),
            )
    if out.problems:
        return out
    policy = _case_policy(path, document, problem, out.problems)
    if policy is None:
        return out
    for index, raw in enumerate(data["cases"]):
        case = _read_case(path, document, index, raw, policy, problem)
        if case is not None:
            out.cases.append(case)
    return out


def _case_policy(
    path: Path, document: Document, problem: Any, problems: list[Problem]
) -> Policy | None:
    data = document.data
    if "policy_file" in data:
        target = (path.parent / str(data["policy_file"])).resolve()
        if not target.is_file():
            problem(("policy_file",), f"no such file: {target}")
            return None
        try:
            return load_policy(target)
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None
    if not isinstance(data.get("policy"), dict):
        problem(("policy",), "give the policy inline (policy: {...}) or policy_file")
        return None
    # The inline policy keeps the case file's lines, so its problems say cases.yaml:12.
    prefix: KeyPath = ("policy",)
    sub = Document(
        data["policy"],
        str(path),
        {k[1:]: v for k, v in document.lines.items() if k[:1] == prefix},
        booleans={k[1:]: v for k, v in document.booleans.items() if k[:1] == prefix},
    )
    own: list[Problem] = []
    policy = read_policy(sub, own)
    for p in own:
        inner = "policy" if p.path == "(top level)" else f"policy.{p.path}"
        problems.append(Problem(inner, p.message, p.location, p.hint))
    return None if own else policy


def _read_case(
    path: Path, document: Document, index: int, raw: Any, policy: Policy, problem: Any
) -> Case | None:
    at: KeyPath = ("cases", index)
    if not isinstance(raw, dict):
        problem(at, "a case must be a mapping (name, request, expect)")
        return None
    broken = False
    for key in raw:
        if key not in _CASE_KEYS:
            problem(
                (*at, key),
                "unknown key (known keys: expect, name, request, request_json)",
                did_you_mean(key, _CASE_KEYS),
            )
            broken = True
    expect = raw.get("expect")
    if not isinstance(expect, dict):
        problem(at, "a case needs expect: a mapping of what is expected")
        return None
    for key in expect:
        if key not in _EXPECT_KEYS:
            known = ", ".join(sorted(_EXPECT_KEYS))
            problem(
                (*at, "expect", key),
                f"unknown key (known keys: {known})",
                did_you_mean(key, _EXPECT_KEYS),
            )
            broken = True
    if "decision" in expect and expect["decision"] not in ("allowed", "denied", "would_deny"):
        problem((*at, "expect", "decision"), "must be allowed, denied or would_deny")
        broken = True
    request_json = raw.get("request_json")
    if request_json is not None and not isinstance(request_json, str):
        problem((*at, "request_json"), "must be a string (the raw JSON body)")
        broken = True
    elif request_json is None and not isinstance(raw.get("request"), dict):
        problem(at, "a case needs request (a mapping) or request_json (a string)")
        broken = True
    if broken:
        return None
    return Case(
        file=path,
        name=str(raw.get("name", f"case {index}")),
        policy=policy,
        request=raw.get("request"),
        request_json=request_json,
        expect=expect,
        line=document.lines.get(at),
    )


def discover(*paths: Path) -> Iterator[Path]:
    """Case files: each file given, and every ``*.yaml``/``*.yml`` below each folder
    (sorted, each once)."""
    seen: set[Path] = set()
    for path in paths:
        found = (
            sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if path.is_dir()
            else [path]
        )
        for item in found:
            if item not in seen:
                seen.add(item)
                yield item


def policy_rules() -> list[str]:
    """The rule ids of the policy engine's refusals (``Stage.POLICY``): what coverage counts."""
    return [rule.id for rule in rules.by_stage(rules.Stage.POLICY)]


def uncovered(outcomes: Iterable[Outcome]) -> list[str]:
    """The policy rule ids no case's decision produced (in registry order)."""
    seen = {o.decision.rule for o in outcomes if o.decision is not None}
    return [rule for rule in policy_rules() if rule not in seen]


def evaluate_resolved(
    policy: Policy, request: dict[str, Any] | None, request_json: str | None
) -> Resolution:
    """:func:`evaluate`, with report-only applied as the gateway applies it: a refusal of a
    report-only group becomes ``would_deny`` unless an enforced rule still refuses."""
    decision = evaluate(policy, request, request_json)
    return resolve(policy, decision, lambda view: evaluate(view, request, request_json))


def run_case(case: Case) -> Outcome:
    try:
        resolution = evaluate_resolved(case.policy, case.request, case.request_json)
    except Exception as exc:  # the engine is total; a fault here is a bug, reported per case
        return Outcome(case, None, (f"the policy engine failed: {type(exc).__name__}: {exc}",))
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
