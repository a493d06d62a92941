"""Replaying recorded decisions (gateway.audit.replay) through a candidate policy, with
events built the way the gateway builds them (an AuditRecord, noted stage by stage)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gateway.audit.events import REGISTRATION_EVENT, AuditRecord
from gateway.audit.replay import (
    ALLOW_TO_DENY,
    DENY_TO_ALLOW,
    NOT_JUDGED,
    RULE_CHANGED,
    TOO_LARGE,
    Report,
    read_events,
    replay,
)
from gateway.policy.judge import judge
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import Policy
from gateway.policy.report_only import resolve

APP = "https://app.example.com/cb"
OTHER = "https://other.example.com/cb"
CURRENT = policy_from_mapping(
    {"version": 1, "redirect_uris": {"managed_list": "none", "allow": [APP]}}
)


def event(
    policy: Policy, metadata: dict[str, Any], *, tenant: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One registration event, as the gateway writes it."""
    record = AuditRecord(REGISTRATION_EVENT, "rid", "203.0.113.1", None, "POST", "/reg")
    record.tenant = tenant
    record.note_policy(policy)
    record.note_request(metadata)
    record.note_submitted(metadata)
    resolution = resolve(policy, judge(policy, metadata), lambda v: judge(v, metadata))
    record.note_resolution(resolution)
    record.extra.update(extra)
    return {"event": record.event, **json.loads(json.dumps(record.as_fields()))}


def everyone(_: object) -> bool:
    return True


def test_decisions_that_change_are_reported_by_kind() -> None:
    events = [
        event(CURRENT, {"redirect_uris": [APP]}),  # allowed
        event(CURRENT, {"redirect_uris": [OTHER]}),  # denied
        event(CURRENT, {"redirect_uris": [APP], "scope": "admin"}),  # denied: scope
        event(CURRENT, {"redirect_uris": [APP], "client_name": "Tool"}),  # allowed
    ]
    candidate = policy_from_mapping(
        {
            "version": 1,
            "redirect_uris": {"managed_list": "none", "allow": [OTHER], "block": [APP]},
            "client": {"scopes": {"allowed": "any"}},
        }
    )
    report = replay(events, candidate, everyone)
    assert report.replayed == 4
    kinds = [(c.kind, c.before, c.after) for c in report.changes]
    assert kinds == [
        (ALLOW_TO_DENY, ("allowed", "allow.custom"), ("denied", "redirect_uri.blocked")),
        (DENY_TO_ALLOW, ("denied", "redirect_uri.not_allowed"), ("allowed", "allow.custom")),
        (RULE_CHANGED, ("denied", "scope.not_allowed"), ("denied", "redirect_uri.blocked")),
        (ALLOW_TO_DENY, ("allowed", "allow.custom"), ("denied", "redirect_uri.blocked")),
    ]
    assert report.counts() == {ALLOW_TO_DENY: 2, DENY_TO_ALLOW: 1, RULE_CHANGED: 1}
    assert report.revisions == {CURRENT.revision: 4}


def test_the_same_policy_changes_nothing() -> None:
    events = [event(CURRENT, {"redirect_uris": [u]}) for u in (APP, OTHER)]
    report = replay(events, CURRENT, everyone)
    assert (report.replayed, report.unchanged, report.changes) == (2, 2, [])


def test_report_only_verdicts_replay_as_would_deny() -> None:
    reporting = policy_from_mapping(
        {
            "version": 1,
            "enforcement": "report-only",
            "redirect_uris": {"managed_list": "none", "allow": [APP]},
        }
    )
    recorded = event(reporting, {"redirect_uris": [OTHER]})
    assert recorded["policy_decision"] == {
        "decision": "would_deny",
        "rule": "redirect_uri.not_allowed",
    }
    # Enforcing the same rules: the verdict is a deny either way, only its outcome changes.
    report = replay([recorded], CURRENT, everyone)
    [change] = report.changes
    assert (change.kind, change.after) == (RULE_CHANGED, ("denied", "redirect_uri.not_allowed"))
    # The same report-only policy: nothing changes.
    assert replay([recorded], reporting, everyone).unchanged == 1


def test_what_cannot_be_replayed_is_counted() -> None:
    older = {"event": "registration", "decision": "allowed", "rule": "allow.managed"}
    big = event(CURRENT, {"redirect_uris": [APP + "?" + "x" * 1990] * 10})
    bridged = event(CURRENT, {"redirect_uris": [APP]}, source="cimd")
    tenant = event(CURRENT, {"redirect_uris": [APP]}, tenant="other")
    read = {"event": "client.read", "decision": "allowed"}
    report = replay(
        [older, big, bridged, tenant, read],
        CURRENT,
        lambda t: t is None,
    )
    assert report.replayed == 0
    assert report.skipped == {
        NOT_JUDGED: 1,
        TOO_LARGE: 1,
        "metadata document (CIMD) registration": 1,
        "decided by another tenant's policy": 1,
    }


def test_a_token_s_policy_judges_its_requests(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"t").hexdigest()
    recorded = event(CURRENT, {"redirect_uris": [OTHER]})
    recorded["initial_access_token_name"] = "partner"
    (tmp_path / "partner.yaml").write_text('{"version": 1, "mode": "open"}')
    tokens = [{"name": "partner", "sha256": digest, "policy": "partner.yaml"}]
    (tmp_path / "candidate.yaml").write_text(
        json.dumps(
            {
                "version": 1,
                "redirect_uris": {"managed_list": "none", "allow": [APP]},
                "initial_access_tokens": {"tokens": tokens},
            }
        )
    )
    candidate = load_policy(tmp_path / "candidate.yaml")
    [change] = replay([recorded], candidate, everyone).changes
    assert (change.kind, change.after) == (DENY_TO_ALLOW, ("allowed", "allow.open"))
    recorded["initial_access_token_name"] = "another"  # not the candidate's: it judges
    assert replay([recorded], candidate, everyone).unchanged == 1


def test_unreadable_lines_are_counted_not_fatal() -> None:
    report = Report()
    lines = ['{"event": "registration"}', "{cut mid-li", "", "[1, 2]"]
    assert list(read_events(lines, report)) == [{"event": "registration"}]
    assert report.skipped == {"unreadable line": 2}
