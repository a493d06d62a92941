"""The policy engine (gateway.policy.engine.decide): what is awkward to state as case data.

Purity, the documented order of checks, notes, ``on_mismatch: drop`` ordering, the loopback
mode used by the impersonation check, vendor attribution, and safe error descriptions.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.errors import AccessDenied, InvalidClientMetadata, InvalidRedirectURI
from gateway.policy.cases import evaluate
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.engine import decide
from gateway.policy.loader import policy_from_mapping
from gateway.policy.model import Policy

CLAUDE = "https://claude.ai/api/mcp/auth_callback"
GOOD = "https://good.example.com/oauth/cb"
TENANT = "https://tenant.apps.example.com/cb"
EVIL = "https://evil.example/cb"
MCP_REMOTE_ID = "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d"


def make_policy(**overrides: Any) -> Policy:
    """The realistic allowlist of the case files, with top-level sections replaced."""
    data: dict[str, Any] = {
        "version": 1,
        "redirect_uris": {
            "managed_list": "all",
            "allow": ["https://good.example.com/oauth/*", "https://*.apps.example.com/cb"],
            "block": ["https://blocked.apps.example.com/cb"],
        },
        "client": {
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "client_name": {"deny": ["*admin*"]},
        },
    }
    data.update(overrides)
    return policy_from_mapping(data)


POLICY = make_policy()


def view(decision: Decision) -> tuple[Any, ...]:
    """Every field of a decision, with the error as (type, rule, description)."""
    error = decision.error
    return (
        decision.allowed,
        decision.rule,
        decision.description,
        decision.metadata,
        None if error is None else (type(error), error.rule, error.description),
        decision.matched,
        decision.vendor,
        decision.dropped_redirect_uris,
        decision.notes,
    )


# --- purity ---------------------------------------------------------------------------------------

REQUESTS: list[dict[str, Any]] = [
    {"redirect_uris": [CLAUDE], "client_name": "claudeai"},
    {"redirect_uris": [GOOD, CLAUDE]},
    {"redirect_uris": [EVIL]},
    {"redirect_uris": [GOOD], "scope": "openid admin"},
    {"redirect_uris": [GOOD], "post_logout_redirect_uris": [EVIL], "x": {"nested": [1, 2]}},
    {"client_name": "claudeai", "redirect_uris": [TENANT]},
    {"grant_types": ["client_credentials"]},
    {},
]


@pytest.mark.parametrize("request_", REQUESTS, ids=[str(i) for i in range(len(REQUESTS))])
@pytest.mark.parametrize("on_mismatch", ["reject", "drop"])
def test_decisions_are_pure(request_: dict[str, Any], on_mismatch: str) -> None:
    policy = make_policy(
        redirect_uris={
            "allow": ["https://good.example.com/oauth/*", "https://*.apps.example.com/cb"],
            "on_mismatch": on_mismatch,
        }
    )
    before = copy.deepcopy(request_)
    first = decide(policy, request_)
    second = decide(policy, request_, RequestContext(client_ip="192.0.2.1", user_agent="x"))
    assert view(first) == view(second)
    assert request_ == before  # the input, nested lists included, is not mutated
    assert first.metadata is not request_


def test_forwarded_metadata_is_a_new_mapping_with_the_inputs_untouched() -> None:
    request_ = {"redirect_uris": [EVIL, GOOD], "scope": "openid admin"}
    policy = make_policy(
        redirect_uris={"allow": ["https://good.example.com/oauth/*"], "on_mismatch": "drop"},
        client={"scopes": {"on_excess": "trim"}},
    )
    decision = decide(policy, request_)
    assert decision.allowed
    assert decision.metadata["redirect_uris"] == [GOOD]
    assert decision.metadata["scope"] == "openid"
    assert request_ == {"redirect_uris": [EVIL, GOOD], "scope": "openid admin"}


# --- the order of checks (engine docstring) -------------------------------------------------------

ORDER = [
    # (what, policy overrides, request, expected rule) -- each request breaks two rules
    (
        "mode before software statement",
        {"mode": "disabled"},
        {"software_statement": "x.y.z", "redirect_uris": [EVIL]},
        "mode.disabled",
    ),
    (
        "software statement before grant types",
        {},
        {"software_statement": "x.y.z", "grant_types": ["password"], "redirect_uris": [GOOD]},
        "software_statement.not_accepted",
    ),
    (
        "grant types before redirect URIs",
        {},
        {"grant_types": ["password"], "redirect_uris": ["javascript:alert(1)"]},
        "grant_type.not_allowed",
    ),
    (
        "response types before consistency",
        {},
        {"grant_types": ["authorization_code"], "response_types": ["token"]},
        "response_type.not_allowed",
    ),
    (
        "consistency before redirect URIs",
        {},
        {"grant_types": ["refresh_token"], "response_types": ["code"], "redirect_uris": [EVIL]},
        "grant_type.inconsistent",
    ),
    (
        "presence of redirect URIs before the client name",
        {},
        {"client_name": "Super admin"},
        "redirect_uri.missing",
    ),
    (
        "redirect URIs before post-logout URIs",
        {},
        {"redirect_uris": [EVIL], "post_logout_redirect_uris": ["javascript:x"]},
        "redirect_uri.not_allowed",
    ),
    (
        "post-logout URIs before the client name",
        {},
        {"redirect_uris": [GOOD], "post_logout_redirect_uris": [EVIL], "client_name": "admin"},
        "post_logout_redirect_uri.not_allowed",
    ),
    (
        "redirect URIs before impersonation",
        {},
        {"redirect_uris": [EVIL], "client_name": "claudeai"},
        "redirect_uri.not_allowed",
    ),
    (
        "deny globs before impersonation",
        {"client": {"client_name": {"deny": ["claude*"]}}},
        {"redirect_uris": [TENANT], "client_name": "claudeai"},
        "client_name.denied",
    ),
    (
        "client_name impersonation before software_id impersonation",
        {},
        {"redirect_uris": [TENANT], "client_name": "claudeai", "software_id": MCP_REMOTE_ID},
        "client_name.impersonation",
    ),
    (
        "impersonation before the auth method",
        {},
        {
            "redirect_uris": [TENANT],
            "software_id": MCP_REMOTE_ID,
            "token_endpoint_auth_method": "private_key_jwt",
        },
        "software_id.impersonation",
    ),
    (
        "auth method before scope",
        {},
        {"redirect_uris": [GOOD], "token_endpoint_auth_method": "tls_client_auth", "scope": "x"},
        "auth_method.not_allowed",
    ),
    (
        "scope before URL-valued metadata",
        {},
        {"redirect_uris": [GOOD], "scope": "root", "jwks_uri": "http://good.example.com/j"},
        "scope.not_allowed",
    ),
    (
        "jwks conflict before the https check",
        {},
        {"redirect_uris": [GOOD], "jwks": {"keys": []}, "jwks_uri": "http://good.example.com/j"},
        "jwks.conflict",
    ),
    (
        "hygiene before loopback: deny",
        {"redirect_uris": {"loopback": "deny"}},
        {"redirect_uris": ["http://localhost:5000/cb#x"]},
        "redirect_uri.fragment",
    ),
    (
        "loopback: deny before the block list",
        {"redirect_uris": {"loopback": "deny", "block": ["http://localhost/cb"]}},
        {"redirect_uris": ["http://localhost:5000/cb"]},
        "redirect_uri.loopback_denied",
    ),
    (
        "the block list before the allow lists",
        {"redirect_uris": {"allow": ["https://good.example.com/oauth/*"], "block": [GOOD]}},
        {"redirect_uris": [GOOD]},
        "redirect_uri.blocked",
    ),
    (
        "the first refused URI decides, whatever its rule",
        {},
        {"redirect_uris": [GOOD, EVIL, "javascript:alert(1)"]},
        "redirect_uri.not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "request_", "rule"),
    [row[1:] for row in ORDER],
    ids=[row[0] for row in ORDER],
)
def test_the_earlier_check_is_reported(
    overrides: dict[str, Any], request_: dict[str, Any], rule: str
) -> None:
    policy = make_policy(**overrides) if overrides else POLICY
    assert decide(policy, request_).rule == rule


def test_reject_names_the_first_refused_uri() -> None:
    decision = decide(POLICY, {"redirect_uris": [GOOD, "https://evil.example/one", EVIL]})
    assert isinstance(decision.error, InvalidRedirectURI)
    assert decision.description.startswith("redirect_uri 'https://evil.example/one' ")
    assert EVIL not in decision.description


@pytest.mark.parametrize(
    ("request_", "error_type", "status", "error"),
    [
        ({"redirect_uris": [EVIL]}, InvalidRedirectURI, 400, "invalid_redirect_uri"),
        (
            {"redirect_uris": [GOOD], "scope": "x"},
            InvalidClientMetadata,
            400,
            "invalid_client_metadata",
        ),
    ],
)
def test_denials_carry_the_wire_error(
    request_: dict[str, Any], error_type: type, status: int, error: str
) -> None:
    decision = decide(POLICY, request_)
    assert type(decision.error) is error_type
    assert (decision.error.status, decision.error.error) == (status, error)
    assert decision.rule == decision.error.rule
    assert decision.description == decision.error.description
    assert (decision.vendor, decision.dropped_redirect_uris, decision.notes) == (None, (), ())


def test_disabled_is_access_denied() -> None:
    decision = decide(make_policy(mode="disabled"), {})
    assert isinstance(decision.error, AccessDenied)
    assert (decision.error.status, decision.rule) == (403, "mode.disabled")
    assert decision.description == "dynamic client registration is disabled by policy"


# --- notes ----------------------------------------------------------------------------------------


def test_notes_list_every_injected_default_in_order() -> None:
    decision = decide(POLICY, {"redirect_uris": [GOOD]})
    assert decision.notes == (
        "injected grant_types=['authorization_code']",
        "injected response_types=['code']",
        "injected token_endpoint_auth_method=client_secret_basic",
        "injected scope='openid offline_access'",
    )


def test_no_notes_when_nothing_is_injected() -> None:
    decision = decide(
        POLICY,
        {
            "redirect_uris": [GOOD],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
        },
    )
    assert decision.allowed
    assert decision.notes == ()


def test_notes_for_drop_and_trim() -> None:
    policy = make_policy(
        redirect_uris={
            "allow": ["https://good.example.com/oauth/*"],
            "on_mismatch": "drop",
        },
        client={"scopes": {"on_excess": "trim"}},
    )
    decision = decide(
        policy,
        {
            "redirect_uris": [EVIL, GOOD],
            "post_logout_redirect_uris": ["https://evil.example/bye"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid root",
        },
    )
    assert decision.notes == (
        f"dropped redirect_uris={[EVIL]}",
        "dropped post_logout_redirect_uris=['https://evil.example/bye']",
        "trimmed scope ['root']",
    )


# --- on_mismatch: drop ----------------------------------------------------------------------------


def test_drop_keeps_the_order_of_both_lists() -> None:
    policy = make_policy(redirect_uris={"managed_list": "all", "on_mismatch": "drop"})
    kept = [
        "https://vscode.dev/redirect",
        CLAUDE,
        "http://127.0.0.1:1458/mcp/oauth/callback",
        "https://chatgpt.com/connector/oauth/abc",
    ]
    refused = ["https://evil.example/1", "http://evil.example/2", "https://evil.example/3#x"]
    uris = [refused[0], kept[0], kept[1], refused[1], kept[2], refused[2], kept[3]]
    decision = decide(policy, {"redirect_uris": uris})
    assert decision.allowed
    assert decision.rule == "allow.managed"
    assert decision.metadata["redirect_uris"] == kept
    assert decision.dropped_redirect_uris == tuple(refused)
    assert decision.matched == (
        "managed:vscode",
        "managed:claude",
        "managed:cline",
        "managed:chatgpt",
    )
    assert decision.vendor == "vscode"  # the first non-loopback URI


def test_drop_with_nothing_left_reports_the_first_refusal() -> None:
    policy = make_policy(redirect_uris={"block": [EVIL], "on_mismatch": "drop"})
    decision = decide(policy, {"redirect_uris": [EVIL, "javascript:alert(1)"]})
    assert decision.rule == "redirect_uri.blocked"
    assert decision.matched == (f"block:{EVIL}",)


# --- impersonation and the loopback mode ----------------------------------------------------------

MCP_REMOTE_SHAPE = {
    "client_name": "MCP CLI Proxy",
    "redirect_uris": ["http://localhost:9999/oauth/callback"],
}


@pytest.mark.parametrize(
    ("loopback", "rule", "vendor"),
    [
        ("any_port", "allow.custom", "mcp-remote"),
        ("exact", "client_name.impersonation", None),
    ],
)
def test_impersonation_uses_the_policys_loopback_mode(
    loopback: str, rule: str, vendor: str | None
) -> None:
    # The custom pattern accepts any port in both modes; mcp-remote's own entry
    # (http://localhost/oauth/callback) matches port 9999 only under any_port.
    policy = make_policy(
        redirect_uris={
            "managed_list": "none",
            "allow": ["http://localhost:*/oauth/callback"],
            "loopback": loopback,
        }
    )
    decision = decide(policy, MCP_REMOTE_SHAPE)
    assert (decision.rule, decision.vendor) == (rule, vendor)


def test_impersonation_is_checked_against_the_whole_list_even_when_unselected() -> None:
    policy = make_policy(redirect_uris={"managed_list": ["claude"], "allow": [GOOD]})
    decision = decide(policy, {"client_name": "Visual Studio Code", "redirect_uris": [GOOD]})
    assert decision.rule == "client_name.impersonation"
    assert decision.matched == ("managed:vscode",)
    assert "'Visual Studio Code' (Microsoft)" in decision.description


@pytest.mark.parametrize(
    "name",
    [
        "claudeai",
        "CLAUDEAI",
        "  claudeai  ",
        "\uff43\uff4c\uff41\uff55\uff44\uff45\uff41\uff49",
        "claudeai helper",
        "Claude",
        "Claude Desktop",
        "Anthropic Claude",
    ],
)
def test_name_variants_claim_the_managed_client(name: str) -> None:
    decision = decide(POLICY, {"client_name": name, "redirect_uris": [TENANT]})
    assert decision.rule == "client_name.impersonation"


@pytest.mark.parametrize(
    "name", ["claude\u200bai", "claude\u00adai", "claude\u034fai", "\tclaudeai"]
)
def test_hidden_characters_in_a_name_are_refused_not_cleaned(name: str) -> None:
    decision = decide(POLICY, {"client_name": name, "redirect_uris": [TENANT]})
    assert decision.rule == "client_name.hidden_characters"


def test_a_name_that_only_contains_a_managed_name_inside_a_word_claims_nothing() -> None:
    decision = decide(POLICY, {"client_name": "claudeaihelper", "redirect_uris": [TENANT]})
    assert decision.rule == "allow.custom"


def test_a_homoglyph_of_a_managed_name_is_impersonation() -> None:
    decision = decide(POLICY, {"client_name": "cl\u0430udeai", "redirect_uris": [TENANT]})
    assert decision.rule == "client_name.impersonation"


@pytest.mark.parametrize("name", ["claudeai\x00", "claude\x7fai", "\x1bclaudeai"])
def test_a_managed_name_with_control_characters_is_refused(name: str) -> None:
    decision = decide(POLICY, {"client_name": name, "redirect_uris": [TENANT]})
    assert not decision.allowed


def test_a_right_to_left_override_spelling_of_a_managed_name_is_refused() -> None:
    decision = decide(POLICY, {"client_name": "\u202eiaedualc", "redirect_uris": [TENANT]})
    assert not decision.allowed


# --- vendor attribution ---------------------------------------------------------------------------

VENDOR = [
    (
        "by client_name",
        {"client_name": "Cursor", "redirect_uris": ["http://localhost:8787/callback"]},
        "cursor",
    ),
    (
        "by software_id",
        {"software_id": MCP_REMOTE_ID, "redirect_uris": ["http://localhost:1/oauth/callback"]},
        "mcp-remote",
    ),
    (
        "by a non-loopback URI",
        {"redirect_uris": ["https://antigravity.google/oauth-callback"]},
        "antigravity",
    ),
    (
        "by the first non-loopback URI",
        {"redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect", CLAUDE]},
        "vscode",
    ),
    (
        "never by a loopback URI alone",
        {"redirect_uris": ["http://localhost:7777/oauth/callback"]},
        None,
    ),
    ("a custom URI is no vendor", {"redirect_uris": [GOOD]}, None),
    (
        "a name and a software_id of two clients claim no one",
        {
            "client_name": "Gemini CLI MCP Client",
            "software_id": MCP_REMOTE_ID,
            "redirect_uris": ["http://localhost:7777/oauth/callback"],
        },
        None,
    ),
    (
        "name before URI",
        {
            "client_name": "Visual Studio Code",
            "redirect_uris": ["http://localhost/", "https://vscode.dev/redirect"],
        },
        "vscode",
    ),
    (
        "an entry's display name claims it",
        {"client_name": "Zed", "redirect_uris": ["http://127.0.0.1:27523/callback"]},
        "zed",
    ),
    (
        "an ordinary name claims no one",
        {"client_name": "My agent", "redirect_uris": ["http://127.0.0.1:27523/callback"]},
        None,
    ),
    (
        "a denial has no vendor",
        {"client_name": "claudeai", "redirect_uris": [CLAUDE], "scope": "root"},
        None,
    ),
]


@pytest.mark.parametrize(
    ("request_", "vendor"), [row[1:] for row in VENDOR], ids=[row[0] for row in VENDOR]
)
def test_vendor_attribution(request_: dict[str, Any], vendor: str | None) -> None:
    assert decide(POLICY, request_).vendor == vendor


def test_vendor_of_a_custom_pattern_covering_a_managed_uri() -> None:
    policy = make_policy(redirect_uris={"managed_list": "none", "allow": [CLAUDE]})
    decision = decide(policy, {"redirect_uris": [CLAUDE]})
    assert (decision.rule, decision.matched, decision.vendor) == (
        "allow.custom",
        (f"custom:{CLAUDE}",),
        "claude",
    )


def test_open_mode_matches_open_and_still_attributes_vendors() -> None:
    decision = decide(make_policy(mode="open"), {"redirect_uris": [EVIL, CLAUDE]})
    assert (decision.rule, decision.matched, decision.vendor) == ("allow.open", ("open",), "claude")


# --- descriptions are safe to log -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        {"redirect_uris": ["https://good.example.com/oauth/cb\r\nSet-Cookie: a" * 100]},
        {"redirect_uris": [GOOD], "client_name": "Super admin\r\nforged: line"},
        {"redirect_uris": [GOOD], "logo_uri": "http://x.example/\u2028" + "a" * 3000},
        {"redirect_uris": [GOOD], "token_endpoint_auth_method": "x\n" * 500},
    ],
    ids=["redirect_uri", "client_name", "logo_uri", "auth_method"],
)
def test_descriptions_are_escaped_and_bounded(request_: dict[str, Any]) -> None:
    decision = decide(POLICY, request_)
    assert not decision.allowed
    assert "\r" not in decision.description and "\n" not in decision.description
    assert "\u2028" not in decision.description
    assert len(decision.description) < 1000


def test_allowed_description_names_the_matches() -> None:
    decision = decide(POLICY, {"redirect_uris": [CLAUDE, GOOD, CLAUDE]})
    assert decision.matched == ("managed:claude", "custom:https://good.example.com/oauth/*")
    assert decision.description == (
        "allowed: every redirect URI matched an approved pattern "
        "(managed:claude, custom:https://good.example.com/oauth/*)"
    )


# --- URL-valued metadata that is not a string -----------------------------------------------------


@pytest.mark.parametrize("field", ["frontchannel_logout_uri", "backchannel_logout_uri"])
def test_a_logout_uri_that_is_not_a_string_is_refused(field: str) -> None:
    decision = evaluate(POLICY, {"redirect_uris": [GOOD], field: ["http://evil.example/"]}, None)
    assert not decision.allowed
    assert decision.rule in ("metadata.invalid_type", "metadata_url.invalid")
