"""An MCP client pointed at the gateway discovers, registers, logs in and gets a token,
with every request going to the gateway's URL; a phishing lookalike never reaches the
upstream."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.oauth_flow import (
    authorization_code_flow,
    discover,
    refresh_access_token,
    register_client,
)
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

RESOURCE = "http://127.0.0.1:9999/mcp"


@pytest.fixture
async def gateway_in_front(upstream_factory, gateway_factory):
    """The upstream's issuer is the gateway's public URL, as MCP clients require."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = upstream_factory(issuer=url)
    gateway = await gateway_factory(server.url, port=port)
    return server, gateway


async def test_mcp_sdk_shaped_client_gets_a_token_through_the_gateway(gateway_in_front):
    _, gateway = gateway_in_front
    metadata = await discover(gateway.url)
    assert metadata["issuer"] == gateway.url
    assert metadata["registration_endpoint"] == gateway.url + "/reg"

    redirect_uri = "http://localhost:51234/callback"
    client = await register_client(
        gateway.url,
        {
            "response_types": ["code"],
            "scope": "mcp:execute offline_access",
            "client_name": "Claude Code",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "application_type": "native",
        },
    )
    tokens = await authorization_code_flow(
        gateway.url,
        client["client_id"],
        redirect_uri,
        scope="mcp:execute offline_access",
        resource=RESOURCE,
    )
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    refreshed = await refresh_access_token(
        gateway.url, client["client_id"], tokens["refresh_token"], resource=RESOURCE
    )
    assert refreshed["access_token"]

    events = gateway.registrations()
    assert len(events) == 1
    assert events[0]["decision"] == "allowed"
    assert events[0]["client_id"] == client["client_id"]


async def test_claude_shaped_registration_is_allowed(gateway_in_front):
    server, gateway = gateway_in_front
    before = server.client_count()
    client = await register_client(
        gateway.url,
        {
            "client_name": "claudeai",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "mcp:execute offline_access",
        },
    )
    assert server.client_count() == before + 1
    event = gateway.registrations()[0]
    assert event["decision"] == "allowed"
    assert event["rule"] == "allow.managed"
    assert event["vendor"] == "claude"
    assert event["matched"] == ["managed:claude"]
    assert event["client_id"] == client["client_id"]


async def test_impersonating_registration_never_reaches_the_upstream(gateway_in_front):
    server, gateway = gateway_in_front
    before = server.client_count()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gateway.url + "/reg",
            json={
                "client_name": "claudeai",
                "redirect_uris": ["https://claude.ai.evil.example/api/mcp/auth_callback"],
                "token_endpoint_auth_method": "client_secret_post",
            },
        ) as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert body["error"] == "invalid_redirect_uri"
    assert server.client_count() == before

    # A lookalike name with an allowed (custom-free, loopback) URI is refused by name.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gateway.url + "/reg",
            json={
                "client_name": "ClaudeAI ",
                "redirect_uris": ["http://127.0.0.1:4444/callback"],
                "token_endpoint_auth_method": "none",
            },
        ) as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert body["error"] == "invalid_client_metadata"
    assert "claudeai" in body["error_description"].lower()
    assert server.client_count() == before
    rules = [e["rule"] for e in gateway.registrations()]
    assert rules == ["redirect_uri.not_allowed", "client_name.impersonation"]
