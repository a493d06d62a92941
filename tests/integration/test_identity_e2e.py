"""Identity end to end: look-alike names, software ids and borrowed hosts never create a
client upstream; the real clients' registrations do.

The policy is the shipped default.  For the refusals it also allows the attacker's own
redirect URI (``https://evil.example.com/*``), so that the identity rules, not the
allowlist, are what refuses.
"""

from __future__ import annotations

import pytest

from tests.support.e2e import (
    EVIL_CB,
    REQUEST_ID,
    assert_server_header,
    assert_wire_refusal,
    default_policy_data,
    register,
)

pytestmark = pytest.mark.integration

EVIL_ALLOWED = default_policy_data(redirect_uris={"allow": ["https://evil.example.com/*"]})
MCP_REMOTE_ID = "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d"
CLAUDE_CB = "https://claude.ai/api/mcp/auth_callback"


async def refused_without_trace(
    upstream, gateway, session, body, *, rule, error="invalid_client_metadata", status=400
):
    """POST ``body``; it is refused with ``rule``, nothing is created upstream, and exactly
    one audit event says so."""
    before = await upstream.aclient_count(session)
    answer = await register(session, gateway, body)
    assert_wire_refusal(answer, status, error, rule)
    assert await upstream.aclient_count(session) == before
    events = gateway.registrations()
    assert len(events) == 1, events
    event = events[0]
    assert (event["decision"], event["rule"], event["error"]) == ("denied", rule, error)
    assert event["status"] == status
    assert event["request_id"] == answer.headers["X-Request-ID"]
    assert event["upstream_status"] is None
    assert event["client_id"] is None
    return answer, event


# --------------------------------------------------------------------------- names

NAMES = [
    pytest.param("claude\u034fai", "client_name.hidden_characters", "claude", id="cgj-claudeai"),
    pytest.param("Curs\u2c9fr", "client_name.impersonation", "cursor", id="coptic-o-cursor"),
    pytest.param("ChatGPT", "client_name.impersonation", "chatgpt", id="chatgpt"),
    pytest.param("Claude", "client_name.impersonation", "claude", id="claude"),
    pytest.param("Claude Desktop", "client_name.impersonation", "claude", id="claude-desktop"),
    pytest.param("Anthropic Claude", "client_name.impersonation", "claude", id="anthropic-claude"),
    pytest.param("OpenAI ChatGPT", "client_name.impersonation", "chatgpt", id="openai-chatgpt"),
    pytest.param("\u03f2laude", "client_name.impersonation", "claude", id="lunate-sigma-claude"),
    pytest.param(
        "\u1d04\u029f\u1d00\u1d1c\u1d05\u1d07",
        "client_name.impersonation",
        "claude",
        id="small-capitals-claude",
    ),
]


@pytest.mark.parametrize(("name", "rule", "entry"), NAMES)
async def test_lookalike_name_with_attacker_redirect_is_refused(
    upstream, gateway_factory, session, name, rule, entry
):
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    body = {
        "client_name": name,
        "redirect_uris": [EVIL_CB],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    answer, event = await refused_without_trace(upstream, gateway, session, body, rule=rule)
    assert event["client_name"] == name
    assert event["redirect_uris"] == [EVIL_CB]
    if rule == "client_name.impersonation":
        assert event["matched"] == [f"managed:{entry}"]
    # The wire names what was sent, escaped; the audit event keeps it as sent.
    if not name.isascii():
        assert name not in answer.json()["error_description"]
        assert name in event["error_description"]


async def test_attacker_redirect_alone_is_created(upstream, gateway_factory, session):
    """The control: the same policy creates an ordinary client on that redirect URI, so
    the refusals above are the identity rules' doing."""
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    before = await upstream.aclient_count(session)
    answer = await register(
        session, gateway, {"client_name": "Evil Notes", "redirect_uris": [EVIL_CB]}
    )
    assert answer.status == 201, answer
    assert await upstream.aclient_count(session) == before + 1
    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("allowed", "allow.custom")


# --------------------------------------------------------------------------- real clients

REAL_CLIENTS = [
    pytest.param(
        {
            "client_name": "claudeai",
            "redirect_uris": [CLAUDE_CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "mcp:execute offline_access",
        },
        "claude",
        id="claude",
    ),
    pytest.param(
        {
            "client_name": "Claude Code (my-server)",
            "redirect_uris": ["http://localhost:49321/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        },
        "claude-code",
        id="claude-code",
    ),
    pytest.param(
        {
            "client_name": "Visual Studio Code",
            "client_uri": "https://code.visualstudio.com",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": [
                "https://insiders.vscode.dev/redirect",
                "https://vscode.dev/redirect",
                "http://127.0.0.1/",
                "http://127.0.0.1:33418/",
            ],
        },
        "vscode",
        id="vscode",
    ),
    pytest.param(
        {
            "client_name": "Cursor",
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "redirect_uris": [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "https://www.cursor.com/agents/mcp/oauth/callback",
                "http://localhost:8787/callback",
            ],
        },
        "cursor",
        id="cursor",
    ),
    pytest.param(
        {
            "client_name": "MCP CLI Proxy",
            "software_id": MCP_REMOTE_ID,
            "client_uri": "https://github.com/geelen/mcp-remote",
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "redirect_uris": ["http://localhost:3334/oauth/callback"],
        },
        "mcp-remote",
        id="mcp-remote",
    ),
]


@pytest.mark.parametrize(("body", "vendor"), REAL_CLIENTS)
async def test_real_client_is_created(upstream, gateway_factory, session, body, vendor):
    gateway = await gateway_factory(upstream.url)  # the shipped default policy, unchanged
    before = await upstream.aclient_count(session)
    answer = await register(session, gateway, body)
    assert answer.status == 201, answer
    assert_server_header(answer)
    created = answer.json()
    assert await upstream.aclient_count(session) == before + 1
    assert created["client_id"] in upstream.client_ids()
    assert created["redirect_uris"] == body["redirect_uris"]
    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("allowed", "allow.managed")
    assert event["vendor"] == vendor
    assert event["matched"] == [f"managed:{vendor}"]
    assert event["client_id"] == created["client_id"]
    assert event["upstream_status"] == 201
    assert REQUEST_ID.match(event["request_id"])


# --------------------------------------------------------------------------- hosts


async def test_claude_with_a_foreign_logo_is_refused(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url)
    body = {
        "client_name": "claudeai",
        "redirect_uris": [CLAUDE_CB],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://evil.example.com/x.png",
    }
    answer, event = await refused_without_trace(
        upstream, gateway, session, body, rule="identity.foreign_host"
    )
    assert event["matched"] == ["managed:claude"]
    assert "logo_uri" in answer.json()["error_description"]


async def test_ordinary_app_with_a_logo_on_claude_ai_is_refused(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    body = {
        "client_name": "Weather Notes",
        "redirect_uris": [EVIL_CB],
        "logo_uri": "https://claude.ai/images/claude_app_icon.png",
    }
    _, event = await refused_without_trace(
        upstream, gateway, session, body, rule="identity.foreign_host"
    )
    assert event["matched"] == ["managed:claude"]


async def test_ordinary_app_with_claude_pages_in_other_fields_is_refused(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    body = {
        "client_name": "Weather Notes",
        "redirect_uris": [EVIL_CB],
        "policy_uri": "https://www.anthropic.com/legal/privacy",
    }
    await refused_without_trace(upstream, gateway, session, body, rule="identity.foreign_host")


# --------------------------------------------------------------------------- software_id

SOFTWARE_IDS = [
    pytest.param("2e6dc280\u200b-f3c3-4e01-99a7-8181dbd1d23d", id="zero-width-space"),
    pytest.param("2e6dc280-f3c3-4e01-99a7-8181dbd1d23d\u00ad", id="soft-hyphen"),
    pytest.param("\uff12e6dc280-f3c3-4e01-99a7-8181dbd1d23d", id="fullwidth-digit"),
    pytest.param("2\u04356dc280-f3c3-4e01-99a7-8181dbd1d23d", id="cyrillic-ie"),
]


@pytest.mark.parametrize("software_id", SOFTWARE_IDS)
async def test_software_id_lookalike_is_invalid(upstream, gateway_factory, session, software_id):
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    body = {"client_name": "Remote Helper", "software_id": software_id, "redirect_uris": [EVIL_CB]}
    answer, event = await refused_without_trace(
        upstream, gateway, session, body, rule="software_id.invalid"
    )
    assert event["software_id"] == software_id
    assert software_id not in answer.json()["error_description"]


async def test_mcp_remote_software_id_with_attacker_redirect_is_impersonation(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url, policy=EVIL_ALLOWED)
    body = {
        "client_name": "Remote Helper",
        "software_id": MCP_REMOTE_ID,
        "redirect_uris": [EVIL_CB],
    }
    _, event = await refused_without_trace(
        upstream, gateway, session, body, rule="software_id.impersonation"
    )
    assert event["matched"] == ["managed:mcp-remote"]
