"""The client lifecycle with the ``keycloak`` profile, against the Keycloak stand-in: each
realm's policy decides whether its new clients wait for approval, a pending client is
stopped at its realm's authorization and token endpoints, and the registry follows
Keycloak's rotation of the registration access token on every management call, so the
gateway can still delete the client when its pending time is up."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from gateway.registry.entry import Status
from gateway.registry.jobs import run_once
from gateway.state import GATEWAY
from tests.support import keycloak
from tests.support.gateway import RunningGateway
from tests.support.keycloak import KeycloakStandIn
from tests.support.keycloak_gateway import KeycloakRoute

pytestmark = pytest.mark.integration

CALLBACK = "https://acme.example.com/cb"


def policy(**changes: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {"managed_list": "none", "allow": ["https://acme.example.com/*"]},
        **changes,
    }


PENDING = policy(approval={"required": True, "pending_ttl": "10m"})
OPEN = policy()
METADATA = {
    "client_name": "Realm App",
    "redirect_uris": [CALLBACK],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "scope": "openid",
}


gateway_port = keycloak.gateway_port
standin = keycloak.standin


async def start(gateway_factory: Any, standin: KeycloakStandIn, port: int) -> RunningGateway:
    """``acme`` waits for approval (the default policy); ``Customers`` does not."""
    return await gateway_factory(
        standin.url,
        port=port,
        profile="keycloak",
        policy=PENDING,
        policies={"Customers": OPEN},
    )


async def register(session: aiohttp.ClientSession, route: KeycloakRoute, realm: str) -> Any:
    async with session.post(route.registration(realm), json=METADATA) as answer:
        assert answer.status == 201, await answer.text()
        return await answer.json()


async def test_each_realm_decides_and_a_pending_client_is_stopped_in_its_realm(
    gateway_factory, standin, gateway_port
):
    """``acme``'s new client is pending: its realm's authorization endpoint answers the
    page (403, no redirect) and its token endpoint 401 ``invalid_client``, each audited as
    ``client.blocked`` with the realm; ``Customers``' client is active and passes."""
    gateway = await start(gateway_factory, standin, gateway_port)
    route = KeycloakRoute(gateway.url)
    state = gateway.app[GATEWAY]
    async with aiohttp.ClientSession() as session:
        acme = await register(session, route, "acme")
        customers = await register(session, route, "Customers")
        assert (await state.registry.get("acme", acme["client_id"])).status is Status.PENDING
        entry = await state.registry.get("Customers", customers["client_id"])
        assert entry.status is Status.ACTIVE

        auth = f"{gateway.url}/realms/acme/protocol/openid-connect/auth"
        query = {"client_id": acme["client_id"], "response_type": "code", "redirect_uri": CALLBACK}
        async with session.get(auth, params=query, allow_redirects=False) as page:
            assert page.status == 403
            assert "Location" not in page.headers
            assert "awaiting approval" in (await page.text()).lower()
        token = f"{gateway.url}/realms/acme/protocol/openid-connect/token"
        form = {"grant_type": "authorization_code", "code": "x", "client_id": acme["client_id"]}
        async with session.post(token, data=form) as refused:
            assert refused.status == 401
            assert (await refused.json())["error"] == "invalid_client"
        # The same client id in the other realm is another client: not blocked here.
        other = f"{gateway.url}/realms/Customers/protocol/openid-connect/token"
        form["client_id"] = customers["client_id"]
        async with session.post(other, data=form) as passed:
            # The realm's own answer to a made-up code, not the gateway's refusal.
            assert (passed.status, (await passed.json())["error"]) == (400, "invalid_grant")

    blocked = [e for e in gateway.events() if e["event"] == "client.blocked"]
    assert [(e["tenant"], e["rule"], e["status"]) for e in blocked] == [
        ("acme", "approval.pending", 403),
        ("acme", "approval.pending", 401),
    ]


async def test_the_rotated_token_is_kept_so_expiry_can_delete_in_keycloak(
    gateway_factory, standin, gateway_port
):
    """Keycloak rotates the registration access token on every management call, reads
    included: after the client reads itself through the gateway, the token it registered
    with is dead, and only the registry's copy of the new one can delete it.  Expiry then
    deletes it in the realm (the stand-in no longer lists it)."""
    gateway = await start(gateway_factory, standin, gateway_port)
    route = KeycloakRoute(gateway.url)
    state = gateway.app[GATEWAY]
    async with aiohttp.ClientSession() as session:
        client = await register(session, route, "acme")
        client_id = client["client_id"]
        first = client["registration_access_token"]
        headers = {"Authorization": f"Bearer {first}"}
        async with session.get(client["registration_client_uri"], headers=headers) as read:
            assert read.status == 200
            rotated = (await read.json())["registration_access_token"]
        assert rotated != first
        entry = await state.registry.get("acme", client_id)
        assert state.sealer.unseal(entry.sealed_token) == rotated

    assert client_id in standin.client_ids("acme")
    report = await run_once(state, now=time.time() + 3600)
    mine = [a for a in report.actions if a["client_id"] == client_id]
    assert mine == [
        {
            "client_id": client_id,
            "tenant": "acme",
            "vendor": "unknown",
            "reason": "pending_expired",
            "result": "deleted",
            "error": None,
        }
    ]
    assert client_id not in standin.client_ids("acme")
    assert (await state.registry.get("acme", client_id)).status is Status.DELETED
