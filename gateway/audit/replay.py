"""Replaying recorded decisions through a candidate policy: what would change.

A registration or RFC 7592 update event keeps the metadata the policy judged
(``metadata``, without secrets) and the policy's verdict (``policy_decision``), so the
same request can be judged again, purely, by another policy: ``dcr-gateway diff`` shows
which verdicts a policy change would turn (allowed to denied with the rule, denied to
allowed, or another rule) before the change goes live.

What cannot be replayed, and is counted as skipped or left out: events written before
these fields existed, or whose metadata was too large to keep; requests refused before the
policy judged them (bad JSON, a missing initial access token); Client ID Metadata Document
decisions (the document is not in the event); and everything decided around the policy
rather than by it: rate limits, quotas, whether a token was valid, the upstream's answer.
A request that carried an initial access token is judged by the policy that token names
in the candidate, when it names one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.judge import judge
from gateway.policy.model import Policy
from gateway.policy.report_only import resolve

#: The events that carry a judged request.
REPLAYED_EVENTS = frozenset({"registration", "client.updated"})
CANNOT_REPLAY = (
    "rate limits, quotas, initial access tokens' validity and the upstream's answers are "
    "not replayed; events from before metadata was recorded, requests refused before the "
    "policy judged them and metadata document (CIMD) decisions are skipped"
)

NOT_JUDGED = (
    "no recorded policy decision (refused before the policy judged it, or written before "
    "events recorded it)"
)
TOO_LARGE = "metadata too large to have been recorded"
ALLOW_TO_DENY = "allow->deny"
DENY_TO_ALLOW = "deny->allow"
RULE_CHANGED = "rule changed"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    event: dict[str, Any]
    before: tuple[str, str]
    after: tuple[str, str]

    def fields(self) -> dict[str, Any]:
        event = self.event
        return {
            "change": self.kind,
            "event": event.get("event"),
            "timestamp": event.get("timestamp"),
            "request_id": event.get("request_id"),
            "tenant": event.get("tenant"),
            "client_name": event.get("client_name"),
            "client_id": event.get("client_id"),
            "before": {"decision": self.before[0], "rule": self.before[1]},
            "after": {"decision": self.after[0], "rule": self.after[1]},
        }


@dataclass(slots=True)
class Report:
    replayed: int = 0
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    #: Reason -> how many events were not replayed for it.
    skipped: dict[str, int] = field(default_factory=dict)
    #: The policy revisions that decided the replayed events.
    revisions: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def counts(self) -> dict[str, int]:
        out = {ALLOW_TO_DENY: 0, DENY_TO_ALLOW: 0, RULE_CHANGED: 0}
        for change in self.changes:
            out[change.kind] += 1
        return out


def read_events(lines: Iterable[str], report: Report) -> Iterator[dict[str, Any]]:
    """The JSON objects of an audit log (one per line, as the file sink writes them);
    lines that are not are counted, not fatal (a log cut mid-line by rotation)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            report.skip("unreadable line")
            continue
        if isinstance(event, dict):
            yield event
        else:
            report.skip("unreadable line")


def _deny(decision: str) -> bool:
    return decision in ("denied", "would_deny")


def verdict(policy: Policy, metadata: dict[str, Any]) -> tuple[str, str]:
    """The candidate's verdict as an event would record it: ``(decision, rule)``."""
    resolution = resolve(policy, judge(policy, metadata), lambda view: judge(view, metadata))
    return resolution.outcome, resolution.rule


def judging_policy(candidate: Policy, token_name: object) -> Policy:
    """The policy an event's request is judged by in the candidate: the one its initial
    access token names there, if it names one."""
    if isinstance(token_name, str):
        for token in candidate.initial_access_tokens.tokens:
            if token.name == token_name and token.policy is not None:
                return token.policy
    return candidate


def replay(
    events: Iterable[dict[str, Any]],
    candidate: Policy,
    applies_to: Any,
    report: Report | None = None,
) -> Report:
    """Judge every replayable event of ``events`` by ``candidate`` and compare with what
    was recorded; ``applies_to(tenant)`` says whether the candidate replaces the policy
    that decided an event of that tenant."""
    report = report or Report()
    for event in events:
        if event.get("event") not in REPLAYED_EVENTS:
            continue
        if event.get("source") == "cimd":
            report.skip("metadata document (CIMD) registration")
            continue
        if not applies_to(event.get("tenant")):
            report.skip("decided by another tenant's policy")
            continue
        recorded = event.get("policy_decision")
        if not isinstance(recorded, dict):
            report.skip(NOT_JUDGED)
            continue
        metadata = event.get("metadata")
        if not isinstance(metadata, dict):
            report.skip(TOO_LARGE)
            continue
        before = (str(recorded.get("decision")), str(recorded.get("rule")))
        after = verdict(judging_policy(candidate, event.get("initial_access_token_name")), metadata)
        report.replayed += 1
        revision = str(event.get("policy_revision"))
        report.revisions[revision] = report.revisions.get(revision, 0) + 1
        if after == before:
            report.unchanged += 1
        elif not _deny(before[0]) and _deny(after[0]):
            report.changes.append(Change(ALLOW_TO_DENY, event, before, after))
        elif _deny(before[0]) and not _deny(after[0]):
            report.changes.append(Change(DENY_TO_ALLOW, event, before, after))
        else:
            report.changes.append(Change(RULE_CHANGED, event, before, after))
    return report
