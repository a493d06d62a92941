"""The official MCP Python SDK (``mcp`` 2.3.0) as a CIMD client, through the gateway.

A small MCP server (``MCPServer``, streamable HTTP, run by uvicorn in the test's loop) is
a protected resource whose metadata (RFC 9728) names the gateway as its authorization
server; it verifies bearer tokens as JWTs signed by the upstream (node-oidc-provider,
without CIMD) for its own URL (RFC 8707).  The SDK's ``OAuthClientProvider`` gets
``client_metadata_url=``: it discovers the protected resource, then the gateway's metadata
(``client_id_metadata_document_supported: true``), sends the URL as ``client_id`` at the
authorization and token endpoints with PKCE, and never registers.  The user's part (login
and consent at the upstream, through the gateway) is played by the same form-following
browser as :mod:`tests.support.oauth_flow`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

pytest.importorskip("mcp.client.auth")  # the dev extra (mcp==2.3.0)

import httpx2
import jwt
import uvicorn
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from yarl import URL

from tests.support.cimd_gateway import decisions, document, registrations, start_gateway
from tests.support.oauth_flow import MAX_STEPS, OAuthFlowError, _Browser, _form_request
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"
PATH = "/oauth/mcp-sdk-client.json"
SDK_CALLBACK = "http://127.0.0.1:47123/callback"
SCOPE = "mcp:execute"


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class UpstreamJWTVerifier:
    """Accepts access tokens that are JWTs signed by the upstream's keys, issued by the
    gateway's issuer, for this MCP server's URL."""

    def __init__(self, jwks: dict[str, Any], issuer: str, resource: str) -> None:
        self.keys = jwt.PyJWKSet.from_dict(jwks)
        self.issuer = issuer
        self.resource = resource
        self.seen: list[dict[str, Any]] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next(k for k in self.keys.keys if k.key_id == kid)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "PS256", "ES256"],
                audience=self.resource,
                issuer=self.issuer,
            )
        except (jwt.PyJWTError, StopIteration):
            return None
        self.seen.append(claims)
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims.get("exp"),
            resource=self.resource,
            subject=claims.get("sub"),
        )


@dataclass
class McpServer:
    url: str
    verifier: UpstreamJWTVerifier
    server: uvicorn.Server
    task: asyncio.Task[None] = field(repr=False)


@pytest.fixture
async def mcp_server(cimd_upstream) -> AsyncIterator[McpServer]:
    """The MCP server, protected by the gateway (its issuer) on ``cimd_upstream.port``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    async with aiohttp.ClientSession() as session:
        async with session.get(cimd_upstream.url + "/jwks") as response:
            assert response.status == 200
            jwks = await response.json()
    verifier = UpstreamJWTVerifier(jwks, cimd_upstream.gateway_url, url)
    app = MCPServer(
        "cimd-test-server",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=cimd_upstream.gateway_url,
            resource_server_url=url,
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )

    @app.tool()
    def whoami() -> str:
        """The client id the access token names."""
        token = get_access_token()
        return "anonymous" if token is None else token.client_id

    config = uvicorn.Config(
        app.streamable_http_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "the MCP server did not start"
    try:
        yield McpServer(url, verifier, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Browser:
    """The user: follows the authorization URL through login and consent (only ever on the
    gateway's origin), and hands the SDK the code from the redirect to its callback."""

    def __init__(self, gateway_url: str, session: aiohttp.ClientSession) -> None:
        self.browser = _Browser(gateway_url, session)
        self.authorization_urls: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        method, url, data = "GET", URL(authorization_url, encoded=True), None
        for _ in range(MAX_STEPS):
            async with self.browser.request(method, url, data=data) as response:
                body = await response.text()
                if response.status in {302, 303, 307, 308}:
                    location = response.headers["Location"]
                    if location.startswith(SDK_CALLBACK):
                        query = URL(location, encoded=True).query
                        self.result = AuthorizationCodeResult(
                            code=query["code"], state=query.get("state"), iss=query.get("iss")
                        )
                        return
                    url = url.join(URL(location, encoded=True))
                    method, data = "GET", None
                    continue
                if response.status == 200 and "<form" in body:
                    method, url, data = _form_request(body, response.url, "mcp-user")
                    continue
                raise OAuthFlowError(f"{method} {url} answered {response.status}:\n{body[:2000]}")
        raise OAuthFlowError("no redirect to the callback")

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


async def test_the_mcp_sdk_signs_in_with_its_metadata_url_and_calls_a_tool(
    cimd_upstream, gateway_factory, cimd_authority, documents, mcp_server
):
    """Discovery (protected resource, then the gateway's metadata with the CIMD flag),
    authorization with PKCE and the URL as client_id, token, one tool call with the token:
    the client never posts to the registration endpoint; the only registration in the
    gateway's audit is the bridged one (``source: cimd``)."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = documents.serve(
        HOST,
        PATH,
        document(
            documents.url(HOST, PATH),
            client_name="MCP SDK test client",
            scope=f"openid offline_access {SCOPE}",
        ),
    )
    before = await cimd_upstream.count()

    async with aiohttp.ClientSession() as session:
        browser = Browser(gateway.url, session)
        provider = OAuthClientProvider(
            server_url=mcp_server.url,
            client_metadata=OAuthClientMetadata(
                client_name="MCP SDK test client",
                redirect_uris=[SDK_CALLBACK],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=MemoryStorage(),
            redirect_handler=browser.redirect_handler,
            callback_handler=browser.callback_handler,
            client_metadata_url=url,
        )
        async with httpx2.AsyncClient(auth=provider, timeout=10) as http:
            async with streamable_http_client(mcp_server.url, http_client=http) as (read, write):
                async with ClientSession(read, write) as mcp:
                    await mcp.initialize()
                    result = await mcp.call_tool("whoami", {})

    assert not result.is_error, result
    [bridged] = registrations(gateway)
    assert bridged["source"] == "cimd" and bridged["client_id_url"] == url
    assert result.content[0].text == bridged["client_id"]  # the token names the bridged client

    [authorization_url] = browser.authorization_urls
    sent = URL(authorization_url).query
    assert sent["client_id"] == url
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["resource"] == mcp_server.url
    assert URL(authorization_url).origin() == URL(gateway.url).origin()

    seen = decisions(gateway)
    assert [(e["endpoint"], e["decision"]) for e in seen] == [
        ("authorization", "allowed"),
        ("token", "allowed"),
    ]
    assert {e["bridged_client_id"] for e in seen} == {bridged["client_id"]}
    assert not any(
        e.get("event") == "registration" and e.get("source") != "cimd" for e in gateway.events()
    )
    assert await cimd_upstream.count() == before + 1
    assert mcp_server.verifier.seen, "the MCP server verified no token"
    claims = mcp_server.verifier.seen[0]
    assert claims["aud"] == mcp_server.url  # RFC 8707: a token for this server only
    assert claims["client_id"] == bridged["client_id"]
    assert SCOPE in claims["scope"].split()
