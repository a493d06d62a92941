"""Report-only (gateway.policy.report_only): which refusals a policy only reports, the
enforced view that acts on them, and the resolution a handler acts on.

The request-level behaviour of each group is in tests/policy_cases/report-only-*.yaml;
here: the loader's keys, the view's construction, the pieces a policy case cannot reach
(metadata documents), and that the mapping names only real rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import rules
from gateway.cimd.judge import judge_document
from gateway.config.yamlsource import ConfigError
from gateway.policy.judge import judge
from gateway.policy.loader import policy_from_mapping
from gateway.policy.model import Enforcement, Mode, Policy, RuleGroup
from gateway.policy.patterns import LoopbackMode
from gateway.policy.report_only import (
    GROUP_OF,
    SECTION_GROUPS,
    enforced_view,
    group_of,
    reported_group,
    resolve,
)


def policy(**data: Any) -> Policy:
    return policy_from_mapping({"version": 1, **data})


def resolved(p: Policy, metadata: dict[str, Any]) -> Any:
    return resolve(p, judge(p, metadata), lambda view: judge(view, metadata))


def test_every_reportable_rule_is_a_real_policy_rule() -> None:
    """A typo in the mapping would silently enforce a rule meant to be reportable."""
    for rule_id in GROUP_OF:
        assert rule_id in rules.RULES, rule_id
        assert rules.RULES[rule_id].stage in (rules.Stage.POLICY, rules.Stage.DOCUMENT)


@pytest.mark.parametrize(
    "rule_id",
    [
        "redirect_uri.fragment",
        "redirect_uri.too_many",
        "redirect_uri.missing",
        "metadata_url.ip_address",
        "metadata_url.internal_host",
        "software_statement.not_accepted",
        "grant_type.inconsistent",
        "client_name.hidden_characters",
        "software_id.invalid",
        "jwks.conflict",
        "request.invalid_json",
        "metadata.too_many_values",
        "rate_limit.<name>",
        "quota.max_clients",
        "cimd.client_id_mismatch",
        "cimd.shared_secret",
    ],
)
def test_rules_the_policy_file_does_not_configure_are_never_reported(rule_id: str) -> None:
    assert group_of(rule_id) is None


def test_the_default_is_enforce_with_no_view() -> None:
    p = policy()
    assert p.enforcement is Enforcement.ENFORCE
    assert p.report_only == frozenset()
    assert p.enforced_view is None


def test_whole_policy_report_only_covers_every_group_and_mode() -> None:
    p = policy(enforcement="report-only", mode="disabled")
    assert p.report_only == {RuleGroup.MODE, *SECTION_GROUPS}
    assert p.enforced_view is not None
    assert p.enforced_view.mode is Mode.ALLOWLIST
    assert p.enforced_view.report_only == frozenset()
    assert p.enforced_view.enforced_view is None


def test_sections_name_their_own_group() -> None:
    p = policy(
        redirect_uris={"report_only": True},
        client={"report_only": False},
        identity={"report_only": True},
        cimd={"report_only": True},
    )
    assert p.report_only == {RuleGroup.REDIRECT_URIS, RuleGroup.IDENTITY, RuleGroup.CIMD}
    assert p.enforcement is Enforcement.ENFORCE


def test_a_disabled_mode_is_enforced_unless_the_whole_policy_reports() -> None:
    p = policy(mode="disabled", redirect_uris={"report_only": True})
    resolution = resolved(p, {"redirect_uris": ["https://app.example.com/cb"]})
    assert resolution.outcome == "denied"
    assert resolution.rule == "mode.disabled"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"enforcement": "audit"}, "enforcement: must be one of enforce, report-only"),
        ({"redirect_uris": {"report_only": "yes"}}, "redirect_uris.report_only: must be true"),
        ({"identity": {"protect": False}}, "identity.protect: unknown key"),
        ({"identity": []}, "identity: must be a mapping"),
    ],
)
def test_loader_refuses_bad_keys(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        policy(**data)
    assert problem in str(caught.value)


def test_the_enforced_view_switches_off_only_its_groups() -> None:
    base = policy(
        redirect_uris={"block": ["https://bad.example.com/*"], "loopback": "deny"},
        client={
            "token_endpoint_auth_methods": ["none"],
            "default_token_endpoint_auth_method": "none",
            "client_name": {"deny": ["*x*"]},
            "fetched_url_hosts": ["keys.example.com"],
        },
    )
    view = enforced_view(base, frozenset({RuleGroup.REDIRECT_URIS}))
    assert view.redirect_uris.any_allowed
    assert len(view.redirect_uris.blocked) == 0
    assert view.redirect_uris.loopback is LoopbackMode.ANY_PORT
    assert view.client == base.client  # the client group still enforces
    assert view.protect_identities
    view = enforced_view(base, frozenset({RuleGroup.CLIENT}))
    assert view.redirect_uris == base.redirect_uris
    assert view.client.token_endpoint_auth_methods is None
    assert view.client.default_token_endpoint_auth_method == "none"  # defaults still injected
    assert view.client.scopes.allowed is None
    assert view.client.scopes.default == base.client.scopes.default
    assert view.client.client_name_deny == ()
    assert view.client.fetched_url_hosts is None


def test_an_allowed_request_resolves_to_itself() -> None:
    p = policy(redirect_uris={"report_only": True, "allow": ["https://app.example.com/cb"]})
    decision = judge(p, {"redirect_uris": ["https://app.example.com/cb"]})
    calls: list[Policy] = []
    resolution = resolve(p, decision, lambda view: calls.append(view) or decision)
    assert resolution.acting is decision and resolution.reported is None
    assert resolution.outcome == "allowed" and calls == []  # nothing judged twice


def test_a_reported_refusal_is_acted_on_by_the_view() -> None:
    p = policy(redirect_uris={"report_only": True})
    resolution = resolved(p, {"redirect_uris": ["https://other.example.com/cb"]})
    assert resolution.outcome == "would_deny"
    assert resolution.rule == "redirect_uri.not_allowed"
    assert resolution.group is RuleGroup.REDIRECT_URIS
    assert resolution.acting.allowed
    assert resolution.acting.metadata["redirect_uris"] == ["https://other.example.com/cb"]
    assert reported_group(p, resolution.reported) is RuleGroup.REDIRECT_URIS


def test_an_enforced_rule_after_a_reported_one_refuses() -> None:
    """The engine stops at the first refusal; the view reaches the SSRF rule after it."""
    p = policy(redirect_uris={"report_only": True})
    metadata = {
        "redirect_uris": ["https://other.example.com/cb"],
        "jwks_uri": "https://10.0.0.1/keys",
    }
    assert judge(p, metadata).rule == "redirect_uri.not_allowed"
    resolution = resolved(p, metadata)
    assert resolution.outcome == "denied"
    assert resolution.rule == "metadata_url.ip_address"
    assert resolution.reported is None


# --------------------------------------------------------------------------- documents

OTHER = "https://mcp-client.example.com/oauth/client.json"
CLAUDE = "https://claude.ai/oauth/mcp-oauth-client-metadata"


def document(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "client_id": url,
        "client_name": "Example MCP Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
        **changes,
    }


def resolved_document(p: Policy, url: str, doc: dict[str, Any]) -> Any:
    decision = judge_document(p, url, doc)
    return resolve(p, decision, lambda view: judge_document(view, url, doc))


def test_cimd_report_only_reports_an_unlisted_document_url() -> None:
    p = policy(
        redirect_uris={"allow": ["http://127.0.0.1/callback"]},
        cimd={"report_only": True},
    )
    resolution = resolved_document(p, OTHER, document(OTHER))
    assert resolution.outcome == "would_deny"
    assert resolution.rule == "cimd.not_allowed"


def test_cimd_documents_own_rules_are_enforced_under_report_only() -> None:
    p = policy(enforcement="report-only")
    resolution = resolved_document(p, OTHER, document(OTHER, client_secret="s3cret"))
    assert resolution.outcome == "denied"
    assert resolution.rule == "cimd.shared_secret"


def test_identity_report_only_reports_a_borrowed_managed_document_url() -> None:
    p = policy(
        redirect_uris={"allow": ["http://127.0.0.1/callback"]},
        identity={"report_only": True},
    )
    doc = document(CLAUDE, client_name="Example")
    assert judge_document(p, CLAUDE, doc).rule == "cimd.identity_mismatch"
    resolution = resolved_document(p, CLAUDE, doc)
    assert resolution.outcome == "would_deny"
    assert resolution.rule == "cimd.identity_mismatch"
