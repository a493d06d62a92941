"""``judge_document``: the verdict on a Client ID Metadata Document, pure.

Every document rule (client_id equal to the URL, no shared secrets, required fields), the
policy's lists (``mode``, ``cimd.managed_list``, ``cimd.allow``) and the managed identity
rule: a managed entry's exact client_id URL is accepted only with a document that brings
that entry's redirect URIs, so a look-alike document cannot borrow the vendor's name.  The
managed URLs are the real ones (port-less), which the integration tests cannot serve.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.cimd.judge import NOT_METADATA, SHARED_SECRET_METHODS, judge_document, listed
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import Policy
from tests.support.paths import ROOT

DEFAULT = load_policy(ROOT / "policies" / "default.yaml")
OPEN = policy_from_mapping({"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}})
DISABLED = policy_from_mapping({"version": 1, "mode": "disabled"})

CLAUDE = "https://claude.ai/oauth/mcp-oauth-client-metadata"
CLAUDE_CODE = "https://claude.ai/oauth/claude-code-client-metadata"
VSCODE = "https://vscode.dev/oauth/client-metadata.json"
CHATGPT = "https://chatgpt.com/oauth/client.json"
ZED = "https://zed.dev/oauth/client-metadata.json"
OTHER = "https://mcp-client.example.com/oauth/client.json"


def allowlist(**cimd: Any) -> Policy:
    return policy_from_mapping(
        {
            "version": 1,
            "mode": "allowlist",
            "redirect_uris": {"allow": ["http://127.0.0.1/callback"]},
            "client": {"scopes": {"allowed": "any"}},
            "cimd": cimd,
        }
    )


def doc(url: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": url,
        "client_name": "Example MCP Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


# The clients' own documents, in the shapes ../shared/reference/cimd.md describes.
CLAUDE_DOC = doc(
    CLAUDE,
    client_name="Claude",
    redirect_uris=["https://claude.ai/api/mcp/auth_callback"],
    client_uri="https://claude.ai",
)
CLAUDE_CODE_DOC = doc(
    CLAUDE_CODE,
    client_name="Claude Code",
    redirect_uris=["http://localhost/callback", "http://127.0.0.1/callback"],
)
VSCODE_DOC = doc(
    VSCODE,
    client_name="Visual Studio Code",
    redirect_uris=["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
    application_type="native",
)
CHATGPT_DOC = doc(
    CHATGPT,
    client_name="ChatGPT",
    redirect_uris=["https://chatgpt.com/connector_platform_oauth_redirect"],
    token_endpoint_auth_method="private_key_jwt",
    jwks_uri="https://chatgpt.com/oauth/jwks.json",
)
ZED_DOC = doc(ZED, client_name="Zed", redirect_uris=["http://127.0.0.1/callback"])


def refused(decision: Decision, rule: str) -> None:
    assert not decision.allowed, decision
    assert decision.rule == rule, decision
    assert decision.error is not None and decision.error.rule == rule


# --------------------------------------------------------------------------- the document


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"client_id": OTHER + "x"}, "cimd.client_id_mismatch"),
        ({"client_id": OTHER.upper()}, "cimd.client_id_mismatch"),
        ({"client_id": OTHER + "/"}, "cimd.client_id_mismatch"),
        ({"client_id": None}, "cimd.client_id_mismatch"),
        ({"client_secret": "s3cret"}, "cimd.shared_secret"),
        ({"client_secret_expires_at": 0}, "cimd.shared_secret"),
        ({"client_name": None}, "cimd.missing_field"),
        ({"redirect_uris": None}, "cimd.missing_field"),
    ],
)
def test_the_documents_own_rules(changes: dict[str, Any], rule: str) -> None:
    """What the draft requires of the document itself, before any policy: its client_id is
    the URL exactly, it carries no secret, and it names itself and its redirect URIs."""
    refused(judge_document(OPEN, OTHER, doc(OTHER, **changes)), rule)


@pytest.mark.parametrize("method", sorted(SHARED_SECRET_METHODS))
def test_shared_secret_auth_methods_are_refused(method: str) -> None:
    """A shared-secret token endpoint auth method needs a secret nobody can have been given
    (draft §4.1), even where the policy allows the method for registrations."""
    refused(
        judge_document(DEFAULT, CLAUDE, {**CLAUDE_DOC, "token_endpoint_auth_method": method}),
        "cimd.shared_secret",
    )


def test_a_good_document_is_judged_like_a_registration_body() -> None:
    """An allowed document's metadata is what a registration would be: the engine's
    defaults injected, the document's own fields (client_id) left out."""
    decision = judge_document(OPEN, OTHER, doc(OTHER, client_id_issued_at=1, scope=None))
    assert decision.allowed, decision
    assert decision.rule == "allow.open"
    assert not NOT_METADATA & decision.metadata.keys()
    assert decision.metadata["scope"]  # the policy's default scope, injected
    assert decision.metadata["redirect_uris"] == ["http://127.0.0.1/callback"]


def test_the_engine_judges_the_rest_with_its_own_rule_ids() -> None:
    """Everything else is the engine's: ill-typed fields, refused redirect URIs, scopes,
    auth methods, with the same rule ids as a registration."""
    refused(judge_document(OPEN, OTHER, doc(OTHER, redirect_uris="x")), "metadata.invalid_type")
    refused(
        judge_document(OPEN, OTHER, doc(OTHER, redirect_uris=["http://evil.example.com/cb"])),
        "redirect_uri.insecure_http",
    )
    refused(
        judge_document(
            allowlist(allow=[OTHER]), OTHER, doc(OTHER, redirect_uris=["https://a.example.org/cb"])
        ),
        "redirect_uri.not_allowed",
    )
    public_only = policy_from_mapping(
        {
            "version": 1,
            "client": {
                "token_endpoint_auth_methods": ["none"],
                "default_token_endpoint_auth_method": "none",
            },
        }
    )
    refused(judge_document(public_only, CHATGPT, CHATGPT_DOC), "auth_method.not_allowed")


def test_chatgpts_private_key_jwt_document_passes_the_shipped_policy() -> None:
    """The shipped default allows ``private_key_jwt`` (an asymmetric method, which bridge
    mode verifies itself), so ChatGPT's document is ChatGPT's managed entry."""
    decision = judge_document(DEFAULT, CHATGPT, CHATGPT_DOC)
    assert decision.allowed and decision.vendor == "chatgpt", decision


def test_an_impersonating_name_is_the_engines_identity_rule() -> None:
    """A document at an unlisted URL calling itself Claude with a loopback redirect URI:
    the engine's impersonation rule, as for a registration."""
    refused(
        judge_document(OPEN, OTHER, doc(OTHER, client_name="Claude")), "client_name.impersonation"
    )


# --------------------------------------------------------------------------- the policy


def test_mode_disabled_refuses_documents_too() -> None:
    """``mode: disabled`` refuses metadata documents, even a managed client's, first."""
    refused(judge_document(DISABLED, CLAUDE, CLAUDE_DOC), "mode.disabled")
    refused(judge_document(DISABLED, OTHER, {"client_id": "wrong"}), "mode.disabled")


def test_allowlist_needs_the_url_on_a_list() -> None:
    """Under ``allowlist`` a URL that is neither a selected managed entry's nor matched by
    ``cimd.allow`` is refused (before the document is looked at); one that matches is
    judged."""
    policy = allowlist(allow=["https://mcp-client.example.com/oauth/*"])
    refused(
        judge_document(policy, "https://other-client.example.com/oauth/client.json", {}),
        "cimd.not_allowed",
    )
    refused(
        judge_document(policy, "https://mcp-client.example.com/elsewhere/client.json", {}),
        "cimd.not_allowed",
    )
    assert listed(policy, OTHER) == "cimd:https://mcp-client.example.com/oauth/*"
    decision = judge_document(policy, OTHER, doc(OTHER))
    assert decision.allowed, decision
    assert decision.vendor is None


def test_a_pattern_with_any_port_matches_a_url_with_a_port() -> None:
    """``:*`` in a ``cimd.allow`` pattern matches a client_id URL with any port; without it
    a URL with a port is another URL."""
    url = "https://mcp-client.example.com:8443/oauth/client.json"
    assert listed(allowlist(allow=["https://mcp-client.example.com:*/oauth/*"]), url)
    assert listed(allowlist(allow=["https://mcp-client.example.com/oauth/*"]), url) is None


def test_open_mode_takes_any_url() -> None:
    """``mode: open`` needs no list: any URL whose document passes is allowed."""
    decision = judge_document(
        OPEN,
        "https://other-client.example.com/x.json",
        doc("https://other-client.example.com/x.json"),
    )
    assert decision.allowed, decision


@pytest.mark.parametrize(
    ("managed_list", "url", "on_list"),
    [
        ("all", CLAUDE, "managed:claude"),
        ("all", VSCODE, "managed:vscode"),
        ("none", CLAUDE, None),
        (["vscode"], CLAUDE, None),
        (["vscode"], VSCODE, "managed:vscode"),
    ],
)
def test_the_managed_list_selects_the_managed_urls(
    managed_list: Any, url: str, on_list: str | None
) -> None:
    """``cimd.managed_list`` selects which managed entries' ``cimd_client_ids`` are on the
    list; only the exact URL (no port, no trailing change) counts."""
    policy = allowlist(managed_list=managed_list)
    assert listed(policy, url) == on_list
    assert listed(policy, url + "x") is None
    assert listed(policy, url.replace("https://", "https://www.")) is None


# --------------------------------------------------------------------------- managed identity


@pytest.mark.parametrize(
    ("url", "document", "vendor"),
    [
        (CLAUDE, CLAUDE_DOC, "claude"),
        (CLAUDE_CODE, CLAUDE_CODE_DOC, "claude-code"),
        (VSCODE, VSCODE_DOC, "vscode"),
        (ZED, ZED_DOC, "zed"),
    ],
)
def test_a_managed_url_with_its_own_redirect_uris_is_that_vendor(
    url: str, document: dict[str, Any], vendor: str
) -> None:
    """The real clients' documents at their managed URLs, under the default policy
    (allowlist, every managed entry): allowed, the vendor being the entry."""
    decision = judge_document(DEFAULT, url, document)
    assert decision.allowed, decision
    assert decision.vendor == vendor


def test_chatgpts_document_names_chatgpt_where_private_key_jwt_is_allowed() -> None:
    """ChatGPT's document (``private_key_jwt``) is refused by the default policy's auth
    methods; where the policy allows the method it is ChatGPT's (the bridge then refuses it
    with ``cimd.unsupported_auth``, see the integration tests)."""
    policy = policy_from_mapping(
        {
            "version": 1,
            "client": {
                "token_endpoint_auth_methods": ["none", "private_key_jwt"],
                "default_token_endpoint_auth_method": "none",
            },
        }
    )
    decision = judge_document(policy, CHATGPT, CHATGPT_DOC)
    assert decision.allowed, decision
    assert decision.vendor == "chatgpt"


@pytest.mark.parametrize(
    ("url", "document", "policy", "rule"),
    [
        # Another managed client's redirect URIs (and name) at Claude's URL.
        (CLAUDE, {**VSCODE_DOC, "client_id": CLAUDE}, DEFAULT, "cimd.identity_mismatch"),
        # An anonymous loopback client at Claude's URL (open mode lets its URIs through).
        (CLAUDE, doc(CLAUDE), OPEN, "cimd.identity_mismatch"),
        # Claude's name with foreign redirect URIs: the engine's rule comes first.
        (
            CLAUDE,
            {**CLAUDE_DOC, "redirect_uris": ["https://evil.example.com/cb"]},
            OPEN,
            "client_name.impersonation",
        ),
        # Under the default allowlist, foreign redirect URIs are not on any list.
        (
            CLAUDE,
            {
                **CLAUDE_DOC,
                "client_name": "Totally Legit",
                "redirect_uris": ["https://evil.example.com/cb"],
            },
            DEFAULT,
            "redirect_uri.not_allowed",
        ),
    ],
)
def test_a_managed_url_with_other_redirect_uris_is_refused(
    url: str, document: dict[str, Any], policy: Policy, rule: str
) -> None:
    """A document at a managed entry's URL that does not bring that entry's redirect URIs
    is not that client, whatever else the engine would allow."""
    refused(judge_document(policy, url, document), rule)


def test_a_managed_url_outside_the_selection_is_not_a_managed_client() -> None:
    """With ``managed_list: none`` Claude's URL is on no list under allowlist; in open mode
    it is judged as any URL and the identity rule does not apply to it."""
    refused(judge_document(allowlist(managed_list="none"), CLAUDE, CLAUDE_DOC), "cimd.not_allowed")
    open_unmanaged = policy_from_mapping(
        {"version": 1, "mode": "open", "cimd": {"managed_list": "none"}}
    )
    decision = judge_document(open_unmanaged, CLAUDE, doc(CLAUDE))
    assert decision.allowed, decision
