"""``judge()`` is total: any JSON value in any field, any valid policy, a Decision back.

The engine trusts the RFC 7591 types that :func:`gateway.oauth.body.check_types` enforces;
``judge`` runs that check first, so ``{"scope": 5}`` is ``metadata.invalid_type`` and
``"grant_types": "authorization_code"`` is refused rather than judged one character at a
time.  A decision whose rule is ``internal.error`` would mean a check raised: the
properties below look for exactly that.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.oauth.rfc7591 import (
    BOOLEAN_FIELDS,
    INTEGER_FIELDS,
    OBJECT_FIELDS,
    STRING_ARRAY_FIELDS,
    STRING_FIELDS,
)
from gateway.policy.judge import judge, judge_body
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import Policy
from tests.support.paths import ROOT

POLICIES: dict[str, Policy] = {
    "default": load_policy(ROOT / "policies" / "default.yaml"),
    "open": policy_from_mapping({"version": 1, "mode": "open"}),
    "disabled": policy_from_mapping({"version": 1, "mode": "disabled"}),
    "drop-trim": policy_from_mapping(
        {
            "version": 1,
            "redirect_uris": {
                "allow": ["https://app.example.com/*", "https://*.tenant.example.com/cb"],
                "block": ["https://bad.tenant.example.com/cb"],
                "on_mismatch": "drop",
                "loopback": "deny",
            },
            "client": {
                "scopes": {"allowed": "any"},
                "client_name": {"deny": ["*admin*"], "unprotected": ["Google"]},
                "fetched_url_hosts": ["keys.example.com"],
            },
        }
    ),
    "exact-reject": policy_from_mapping(
        {
            "version": 1,
            "redirect_uris": {"managed_list": ["claude", "vscode"], "loopback": "exact"},
            "client": {"scopes": {"on_excess": "trim"}},
        }
    ),
}

KNOWN_FIELDS = sorted(
    STRING_ARRAY_FIELDS | STRING_FIELDS | OBJECT_FIELDS | INTEGER_FIELDS | BOOLEAN_FIELDS
)
URIS = st.sampled_from(
    [
        "https://claude.ai/api/mcp/auth_callback",
        "http://127.0.0.1:33418/",
        "https://app.example.com/cb",
        "https://evil.example/cb",
        "https://stra\u1e9ee.tenant.example.com/cb",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://127.0.0.1/x",
        "javascript:alert(1)",
        "",
    ]
)
NAMES = st.sampled_from(
    ["claudeai", "Claude Code (x)", "Cl\u0430ude", "claude\u034fai", "My agent", "ADMIN"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
VALUES = JSON | URIS | NAMES | st.lists(URIS | NAMES | JSON, max_size=25)
KEYS = (
    st.sampled_from(KNOWN_FIELDS)
    | st.sampled_from(["client_name#ja", "logo_uri#de", "client_uri#x", "tos_uri#en-US"])
    | st.text(max_size=12)
)
METADATA = st.dictionaries(KEYS, VALUES, max_size=12)


def _assert_decided(decision: Any) -> None:
    assert decision.rule != "internal.error", decision
    assert decision.allowed is (decision.error is None)
    assert decision.rule
    json.dumps(decision.metadata)  # what would be forwarded stays JSON


@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(metadata=METADATA)
def test_judge_decides_any_metadata(name: str, metadata: dict[str, Any]) -> None:
    _assert_decided(judge(POLICIES[name], metadata))


@settings(max_examples=200)
@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_judge_body_decides_any_bytes(body: bytes) -> None:
    _assert_decided(judge_body(POLICIES["default"], body))


@pytest.mark.parametrize(
    ("metadata", "rule"),
    [
        ({"scope": 5}, "metadata.invalid_type"),
        ({"grant_types": "authorization_code"}, "metadata.invalid_type"),
        ({"redirect_uris": "https://app.example.com/cb"}, "metadata.invalid_type"),
        ({"redirect_uris": [5]}, "metadata.invalid_type"),
        ({"client_name": ["claudeai"]}, "metadata.invalid_type"),
        ({"jwks": []}, "metadata.invalid_type"),
        ({"default_max_age": True}, "metadata.invalid_type"),
        ({"require_auth_time": 1}, "metadata.invalid_type"),
        ({"client_name#ja": 5}, "metadata.invalid_type"),
        ({"contacts": ["a@example.com"] * 21}, "metadata.too_many_values"),
    ],
)
def test_badly_typed_fields_are_refused_not_judged(metadata: dict[str, Any], rule: str) -> None:
    decision = judge(POLICIES["default"], metadata)
    assert (decision.allowed, decision.rule) == (False, rule)
    assert decision.error is not None and decision.error.status == 400


def test_a_fault_inside_the_engine_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.policy.judge as judge_module

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(judge_module, "decide", broken)
    decision = judge(POLICIES["default"], {"redirect_uris": ["https://claude.ai/x"]})
    assert (decision.allowed, decision.rule) == (False, "internal.error")
