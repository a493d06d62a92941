"""The ``keycloak`` profile with ``upstream.path_prefix: /auth`` (Keycloak before 17), against a
stand-in serving everything under ``/auth`` and, like every Keycloak before 26.4, no RFC 8414
path-insertion documents at the root."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.keycloak import REGISTRATION_PATH, realm_session
from tests.support.keycloak_fixtures import KeycloakFactory, keycloak_factory  # noqa: F401
from tests.support.keycloak_gateway import (
    CASE_MISMATCH,
    PROVIDER_REFUSED,
    KeycloakRoute,
    rule_of,
    sibling_total,
)
from tests.support.oauth_flow import authorization_code_flow, register_client
from tests.support.rawhttp import raw_request
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

ACME_CB = "https://acme.example.com/cb"
CUSTOMERS_CB = "https://customers.example.com/cb"
CALLBACKS = {"acme": ACME_CB, "Customers": CUSTOMERS_CB}


def policy_allowing(pattern: str) -> dict[str, Any]:
    return {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {"managed_list": "none", "allow": [pattern]},
    }


def client_metadata(redirect_uri: str) -> dict[str, Any]:
    return {
        "client_name": "Prefixed App",
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid offline_access",
    }


async def test_everything_is_guarded_under_the_path_prefix(
    keycloak_factory: KeycloakFactory,  # noqa: F811
    gateway_factory: Any,
) -> None:
    port = free_port()
    standin = keycloak_factory(
        issuer_base=f"http://127.0.0.1:{port}", path_prefix="/auth", root_discovery=False
    )
    gateway = await gateway_factory(
        standin.url,
        port=port,
        profile="keycloak",
        path_prefix="/auth",
        policy=policy_allowing("https://acme.example.com/*"),
        policies={"Customers": policy_allowing("https://customers.example.com/*")},
    )
    route = KeycloakRoute(gateway.url, "/auth")
    assert route.realm_url("acme") == f"{gateway.url}/auth/realms/acme"

    async with aiohttp.ClientSession() as session:
        # Registration per realm, each judged by its policy.
        for realm, callback in CALLBACKS.items():
            before = standin.client_count(realm)
            async with session.post(
                route.registration(realm), json=client_metadata(callback)
            ) as response:
                client = await response.json()
                assert response.status == 201, (realm, client)
            assert client["registration_client_uri"] == (
                f"{route.registration(realm)}/{client['client_id']}"
            )
            assert standin.client_count(realm) == before + 1
            other = ACME_CB if realm == "Customers" else CUSTOMERS_CB
            async with session.post(
                route.registration(realm), json=client_metadata(other)
            ) as response:
                answer = await response.json()
                assert response.status == 400, answer
                assert rule_of(answer) == "redirect_uri.not_allowed"

        # Discovery in every form, rewritten under /auth, even the path-insertion forms this
        # Keycloak does not serve itself (MCP clients try them first).
        async with session.get(
            f"{standin.url}/auth/.well-known/oauth-authorization-server/realms/acme"
        ) as response:
            assert response.status == 404
        for realm in CALLBACKS:
            for form, url in route.discovery(realm).items():
                assert url.startswith(f"{gateway.url}/auth/"), url
                async with session.get(url) as response:
                    document = await response.json()
                    assert response.status == 200, (form, document)
                assert document["issuer"] == route.realm_url(realm), form
                assert document["registration_endpoint"] == (
                    f"{gateway.url}/auth/realms/{realm}{REGISTRATION_PATH}"
                ), form

    # Siblings and wrong-case realms under the prefix never reach the stand-in.
    siblings = sibling_total(standin)
    clients = {realm: standin.client_count(realm) for realm in CALLBACKS}
    refusals = [
        ("/auth/realms/acme/clients-registrations/default", 403, PROVIDER_REFUSED),
        ("/auth/realms/Customers/clients-registrations/install", 403, PROVIDER_REFUSED),
        ("/AUTH/realms/acme/clients-registrations/%64efault", 403, PROVIDER_REFUSED),
        (
            "/auth/realms/acme/clients-registrations/openid-connect/../default",
            403,
            PROVIDER_REFUSED,
        ),
        (
            "//auth//realms/acme/clients-registrations/saml2-entity-descriptor",
            403,
            PROVIDER_REFUSED,
        ),
        ("/x/../auth/realms/acme/clients-registrations/default", 403, PROVIDER_REFUSED),
        ("/auth/realms/customers/clients-registrations/openid-connect", 404, CASE_MISMATCH),
        ("/auth/realms/CUSTOMERS/.well-known/openid-configuration", 404, CASE_MISMATCH),
        ("/auth/.well-known/oauth-authorization-server/realms/customers", 404, CASE_MISMATCH),
    ]
    for target, status, rule in refusals:
        method = "GET" if "well-known" in target else "POST"
        reply = await raw_request(gateway, method, target, client_metadata(CUSTOMERS_CB))
        assert reply.status == status, (target, reply)
        assert rule_of(reply.json()) == rule, target
    assert sibling_total(standin) == siblings
    assert {realm: standin.client_count(realm) for realm in CALLBACKS} == clients

    # Registration without the prefix (a Keycloak with another http-relative-path might serve
    # it) is refused, audited under its realm, and never reaches the stand-in.
    events = len(gateway.events())
    reply = await raw_request(
        gateway, "POST", "/realms/acme/clients-registrations/default", client_metadata(ACME_CB)
    )
    assert reply.status == 404, reply
    assert rule_of(reply.json()) == "keycloak.prefix_mismatch"
    [event] = gateway.events()[events:]
    assert (event["rule"], event["tenant"]) == ("keycloak.prefix_mismatch", "acme")
    assert sibling_total(standin) == siblings

    # A whole flow under the prefix.
    realm_url = route.realm_url("Customers")
    async with realm_session(realm_url) as session:
        client = await register_client(realm_url, client_metadata(CUSTOMERS_CB), session=session)
        tokens = await authorization_code_flow(
            realm_url,
            client["client_id"],
            CUSTOMERS_CB,
            scope="openid offline_access",
            session=session,
            check_issuer=True,
        )
    assert tokens["access_token"]
    judged = [
        e
        for e in gateway.registrations()
        if e["rule"] not in (PROVIDER_REFUSED, CASE_MISMATCH, "keycloak.prefix_mismatch")
    ]
    assert [(e["tenant"], e["decision"]) for e in judged] == [
        ("acme", "allowed"),
        ("acme", "denied"),
        ("Customers", "allowed"),
        ("Customers", "denied"),
        ("Customers", "allowed"),
    ]
