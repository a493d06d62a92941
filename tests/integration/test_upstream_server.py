"""The bundled test authorization server works on its own, so gateway tests can rely on it."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from tests.support.fixtures import UpstreamFactory
from tests.support.oauth_flow import (
    OAuthFlowError,
    authorization_code_flow,
    refresh_access_token,
)
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.integration

REDIRECT_URI = "http://127.0.0.1:12345/callback"
RESOURCE = "http://127.0.0.1:9999/mcp"

# What the official MCP Python SDK sends.
PUBLIC_NATIVE_CLIENT = {
    "response_types": ["code"],
    "scope": "openid offline_access mcp:execute",
    "client_name": "upstream smoke test",
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}


async def register(session: aiohttp.ClientSession, server: UpstreamServer, metadata: Any) -> Any:
    async with session.post(server.url + "/reg", json=metadata) as response:
        body = await response.json()
        assert response.status == 201, body
        return body


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_register_read_back_and_code_flow(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        before = await upstream.aclient_count(session)
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)
        assert await upstream.aclient_count(session) == before + 1
        assert client["client_id"] in upstream.client_ids()
        assert "client_secret" not in client

        headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
        async with session.get(client["registration_client_uri"], headers=headers) as response:
            read_back = await response.json()
            assert response.status == 200, read_back
        assert read_back["client_id"] == client["client_id"]
        assert read_back["redirect_uris"] == [REDIRECT_URI]

    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        REDIRECT_URI,
        scope="openid offline_access mcp:execute",
    )
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert "id_token" in tokens

    refreshed = await refresh_access_token(
        upstream.url, client["client_id"], tokens["refresh_token"]
    )
    assert refreshed["access_token"] != tokens["access_token"]


async def test_resource_indicator_gives_audience_bound_jwt(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)

    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        REDIRECT_URI,
        scope="mcp:execute offline_access",
        resource=RESOURCE,
    )
    claims = jwt_claims(tokens["access_token"])
    assert claims["aud"] == RESOURCE
    assert claims["iss"] == upstream.issuer
    assert "mcp:execute" in claims["scope"].split()
    assert tokens["refresh_token"]

    refreshed = await refresh_access_token(
        upstream.url, client["client_id"], tokens["refresh_token"], resource=RESOURCE
    )
    assert jwt_claims(refreshed["access_token"])["aud"] == RESOURCE


async def test_confidential_client_with_basic_auth(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(
            session,
            upstream,
            {
                "redirect_uris": ["https://app.example/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access mcp:execute",
            },
        )
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        "https://app.example/callback",
        client_secret=client["client_secret"],
    )
    assert tokens["refresh_token"]


async def test_forwarded_headers_move_every_endpoint_to_the_gateway(
    upstream_factory: UpstreamFactory,
) -> None:
    gateway = "http://127.0.0.1:5555"
    server = upstream_factory(issuer=gateway)
    forwarded = {"X-Forwarded-Host": "127.0.0.1:5555", "X-Forwarded-Proto": "http"}
    async with aiohttp.ClientSession() as session:
        url = server.url + "/.well-known/openid-configuration"
        async with session.get(url, headers=forwarded) as response:
            metadata = await response.json()
        async with session.get(url) as response:
            direct = await response.json()

    assert metadata["issuer"] == gateway
    endpoints = {k: v for k, v in metadata.items() if k.endswith(("_endpoint", "_uri"))}
    assert "registration_endpoint" in endpoints
    assert "authorization_endpoint" in endpoints
    for name, value in endpoints.items():
        assert value.startswith(gateway + "/"), (name, value)
    # Without the headers the endpoints name the server itself: the gateway must send them.
    assert direct["issuer"] == gateway
    assert direct["token_endpoint"].startswith(server.url + "/")


async def test_flow_refuses_urls_outside_base_origin(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)
    # Discovery now names another origin, as behind a proxy that forwards the wrong host.
    headers = {"X-Forwarded-Host": "127.0.0.1:5555"}
    async with aiohttp.ClientSession(headers=headers) as session:
        with pytest.raises(OAuthFlowError, match="origin"):
            await authorization_code_flow(
                upstream.url, client["client_id"], REDIRECT_URI, session=session
            )


async def test_test_endpoints(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            upstream.url + "/__test/echo/a%2Fb?x=1&x=2",
            data=b"hello",
            headers=[("X-Twice", "1"), ("X-Twice", "2")],
        ) as response:
            echo = await response.json()
        assert echo["method"] == "POST"
        assert echo["path"] == "/__test/echo/a%2Fb?x=1&x=2"
        assert echo["headers"]["x-twice"] == ["1", "2"]
        assert echo["body"] == "hello"
        assert echo["body_length"] == 5

        async with session.get(upstream.url + "/__test/large?bytes=1000003") as response:
            assert "Content-Length" not in response.headers
            assert response.headers["Transfer-Encoding"] == "chunked"
            body = await response.read()
        assert len(body) == 1000003
        assert body == (b"abcdefghij" * 100001)[:1000003]

        async with session.get(upstream.url + "/__test/cookies") as response:
            assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
            assert response.headers.getall("X-Multi") == ["one", "two"]

        async with session.get(
            upstream.url + "/__test/redirect", allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/somewhere-else"

        async with session.post(upstream.url + "/__test/slow?ms=50", data=b"x") as response:
            assert await response.json() == {"slow": True, "ms": 50, "body_length": 1}
