"""RFC 7592 client management through the gateway, against the real upstream."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.support.oauth_flow import register_client

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
WEB = {
    "client_name": "Good App",
    "redirect_uris": ["https://app.example.com/cb"],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "scope": "openid",
}
POLICY = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "none", "allow": ["https://app.example.com/*"]},
}


async def _register(gateway) -> dict:
    return await register_client(gateway.url, WEB, check_issuer=False)


def _bearer(client: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {client['registration_access_token']}"}


async def test_registration_client_uri_points_at_the_gateway(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await _register(gateway)
    assert client["registration_client_uri"] == f"{gateway.url}/reg/{client['client_id']}"


async def test_read_update_delete_each_write_one_event(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await _register(gateway)
    uri = client["registration_client_uri"]
    async with aiohttp.ClientSession() as session:
        async with session.get(uri, headers=_bearer(client)) as read:
            assert read.status == 200
            current = await read.json()
        update = {
            **{
                k: v
                for k, v in current.items()
                if k
                not in (
                    "registration_access_token",
                    "registration_client_uri",
                    "client_secret_expires_at",
                    "client_id_issued_at",
                )
            },
            "client_name": "Good App v2",
        }
        async with session.put(uri, json=update, headers=_bearer(client)) as put:
            assert put.status == 200, await put.text()
            updated = await put.json()
        assert updated["client_name"] == "Good App v2"
        assert updated["registration_client_uri"] == uri
        async with session.delete(
            uri, headers={"Authorization": f"Bearer {updated['registration_access_token']}"}
        ) as delete:
            assert delete.status == 204
    events = gateway.events()
    assert [e["event"] for e in events] == [
        "registration",
        "client.read",
        "client.updated",
        "client.deleted",
    ]
    assert {e["client_id"] for e in events} == {client["client_id"]}
    assert events[2]["changes"] == {"client_name": {"from": "Good App", "to": "Good App v2"}}
    assert all(e["decision"] == "allowed" for e in events)
    assert [e["rule"] for e in events[1::2]] == ["allow.management", "allow.management"]
    text = gateway.audit_text()
    assert client["registration_access_token"] not in text
    assert updated["registration_access_token"] not in text
    assert client.get("client_secret", "x-no-secret") not in text


async def test_a_refused_update_never_reaches_the_upstream(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await _register(gateway)
    uri = client["registration_client_uri"]
    evil = {
        "client_id": client["client_id"],
        "client_name": "claudeai",
        "redirect_uris": ["https://evil.example.com/cb"],
    }
    async with aiohttp.ClientSession() as session:
        async with session.put(uri, json=evil, headers=_bearer(client)) as put:
            assert put.status == 400
            assert (await put.json())["error"] == "invalid_redirect_uri"
        # The token was never used, so it still reads the client: unchanged upstream.
        async with session.get(uri, headers=_bearer(client)) as read:
            assert read.status == 200
            current = await read.json()
    assert current["redirect_uris"] == WEB["redirect_uris"]
    assert current["client_name"] == "Good App"
    refused = [e for e in gateway.events() if e["event"] == "client.updated"]
    assert len(refused) == 1
    assert (refused[0]["decision"], refused[0]["rule"]) == ("denied", "redirect_uri.not_allowed")
    assert refused[0]["upstream_status"] is None


async def test_an_update_must_carry_its_own_client_id(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await _register(gateway)
    async with aiohttp.ClientSession() as session:
        for body in ({**WEB}, {**WEB, "client_id": "someone-else"}):
            async with session.put(
                client["registration_client_uri"], json=body, headers=_bearer(client)
            ) as put:
                assert put.status == 400
                answer = await put.json()
                assert answer["error"] == "invalid_client_metadata"
                assert answer["error_description"].endswith("(rule management.client_id_mismatch)")
    assert [e["rule"] for e in gateway.events()[1:]] == ["management.client_id_mismatch"] * 2


@pytest.mark.parametrize(
    ("method", "suffix", "status", "rule"),
    [
        ("POST", "", 405, "request.method"),
        ("PATCH", "", 405, "request.method"),
        ("GET", "/extra", 404, "management.not_a_client"),
        ("PUT", "/a/b", 404, "management.not_a_client"),
    ],
)
async def test_other_methods_and_deeper_paths_are_refused(
    upstream, gateway_factory, method, suffix, status, rule
):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await _register(gateway)
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method,
            client["registration_client_uri"] + suffix,
            data=json.dumps(WEB),
            headers={**_bearer(client), "Content-Type": "application/json"},
        ) as response:
            assert response.status == status
            body = await response.json()
            assert body["error_description"].endswith(f"(rule {rule})")
    assert gateway.events()[-1]["rule"] == rule
