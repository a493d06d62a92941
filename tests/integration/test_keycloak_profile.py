"""The gateway's ``keycloak`` profile against the Keycloak stand-in (realms ``acme`` and
``Customers``): one policy per realm, sibling providers refused, realm names case-sensitive,
RFC 7592 and discovery per realm, OAuth flows through the gateway.

``acme`` is no configured tenant, so the default policy judges it (it allows
``https://acme.example.com/*``); ``Customers`` has its own (``https://customers.example.com/*``
only). The stand-in is shared by the module: counts are compared before and after.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.policy.loader import policy_from_mapping
from tests.support import keycloak
from tests.support.gateway import RunningGateway
from tests.support.keycloak import REGISTRATION_PATH, KeycloakStandIn, realm_session
from tests.support.keycloak_gateway import (
    CASE_MISMATCH,
    PROVIDER_REFUSED,
    KeycloakRoute,
    forwarded_as,
    rule_of,
    sibling_total,
)
from tests.support.oauth_flow import authorization_code_flow, register_client
from tests.support.rawhttp import raw_request

pytestmark = pytest.mark.integration

ACME_CB = "https://acme.example.com/cb"
CUSTOMERS_CB = "https://customers.example.com/cb"
EVIL_CB = "https://evil.example.com/cb"


def policy_allowing(pattern: str, **changes: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {"managed_list": "none", "allow": [pattern]},
        **changes,
    }


DEFAULT_POLICY = policy_allowing("https://acme.example.com/*")
CUSTOMERS_POLICY = policy_allowing("https://customers.example.com/*")
REVISIONS = {
    "acme": policy_from_mapping(DEFAULT_POLICY).revision,
    "Customers": policy_from_mapping(CUSTOMERS_POLICY).revision,
}
CALLBACKS = {"acme": ACME_CB, "Customers": CUSTOMERS_CB}
OTHER = {"acme": "Customers", "Customers": "acme"}


def client_metadata(redirect_uri: str, name: str = "Realm App") -> dict[str, Any]:
    return {
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid offline_access",
    }


StartGateway = Callable[..., Awaitable[RunningGateway]]


gateway_port = keycloak.gateway_port
standin = keycloak.standin


@pytest.fixture
def start_gateway(
    gateway_factory: Any, standin: KeycloakStandIn, gateway_port: int
) -> StartGateway:
    """A keycloak-profile gateway in front of the stand-in; Customers has its own policy."""

    async def start(**settings: Any) -> RunningGateway:
        settings.setdefault("policy", DEFAULT_POLICY)
        settings.setdefault("policies", {"Customers": CUSTOMERS_POLICY})
        return await gateway_factory(standin.url, port=gateway_port, profile="keycloak", **settings)

    return start


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post_json(
    session: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    async with session.post(url, json=body, **kwargs) as response:
        return response.status, await response.json(content_type=None)


def without_server_fields(client: dict[str, Any]) -> dict[str, Any]:
    """A client read back, as the body of an RFC 7592 update."""
    dropped = {"registration_access_token", "registration_client_uri", "client_id_issued_at"}
    return {k: v for k, v in client.items() if k not in dropped and "expires_at" not in k}


# ---------------------------------------------------------------------- registration per realm


async def test_each_realm_is_judged_by_its_own_policy(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    gateway = await start_gateway()
    route = KeycloakRoute(gateway.url)
    before = {realm: standin.client_count(realm) for realm in CALLBACKS}
    created: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session:
        for realm, callback in CALLBACKS.items():
            status, client = await post_json(
                session, route.registration(realm), client_metadata(callback)
            )
            assert status == 201, (realm, client)
            created[realm] = client
            assert client["registration_client_uri"] == (
                f"{route.registration(realm)}/{client['client_id']}"
            )
        # Each realm's callback is refused in the other realm: two different policies.
        for realm in CALLBACKS:
            status, answer = await post_json(
                session, route.registration(realm), client_metadata(CALLBACKS[OTHER[realm]])
            )
            assert status == 400, (realm, answer)
            assert answer["error"] == "invalid_redirect_uri"
            assert rule_of(answer) == "redirect_uri.not_allowed"

    for realm, client in created.items():
        assert standin.client_count(realm) == before[realm] + 1, realm
        assert client["client_id"] in standin.client_ids(realm)
        assert client["client_id"] not in standin.client_ids(OTHER[realm])

    events = gateway.registrations()
    assert [(e["tenant"], e["decision"]) for e in events] == [
        ("acme", "allowed"),
        ("Customers", "allowed"),
        ("acme", "denied"),
        ("Customers", "denied"),
    ]
    for event in events:
        assert event["policy_revision"] == REVISIONS[event["tenant"]], event
    assert [e["upstream_status"] for e in events] == [201, 201, None, None]
    assert [e["client_id"] for e in events[:2]] == [
        created["acme"]["client_id"],
        created["Customers"]["client_id"],
    ]


@pytest.mark.parametrize(
    ("target", "tenant"),
    [
        ("/realms/%43ustomers/clients-registrations/openid-connect", "Customers"),
        ("//realms//Customers//clients-registrations//openid-connect//", "Customers"),
        ("/realms/Customers/x/../clients-registrations/OPENID-CONNECT", "Customers"),
        ("/realms/%61cme/clients-registrations/openid%2Dconnect", "acme"),
    ],
)
async def test_every_spelling_of_a_realm_registration_uses_that_realms_policy(
    start_gateway: StartGateway, standin: KeycloakStandIn, target: str, tenant: str
) -> None:
    gateway = await start_gateway()
    before = standin.client_count(tenant)
    refused = await raw_request(gateway, "POST", target, client_metadata(CALLBACKS[OTHER[tenant]]))
    assert refused.status == 400, refused
    assert rule_of(refused.json()) == "redirect_uri.not_allowed"
    allowed = await raw_request(gateway, "POST", target, client_metadata(CALLBACKS[tenant]))
    assert allowed.status == 201, allowed
    assert allowed.json()["client_id"] in standin.client_ids(tenant)
    assert standin.client_count(tenant) == before + 1
    assert [e["tenant"] for e in gateway.registrations()] == [tenant, tenant]


# ---------------------------------------------------------------------- sibling providers

KEYCLOAK_REPRESENTATION = {"clientId": "claudeai", "redirectUris": [EVIL_CB]}
SIBLING_TARGETS = [
    ("POST", "/realms/acme/clients-registrations/default"),
    ("POST", "/realms/acme/clients-registrations/install"),
    ("POST", "/realms/acme/clients-registrations/saml2-entity-descriptor"),
    ("POST", "/realms/acme/clients-registrations/%64efault"),
    ("POST", "/realms/acme/clients-registrations/%2564efault"),
    ("POST", "/realms/acme/clients-registrations/DEFAULT"),
    ("POST", "/realms/acme/clients-registrations/Install"),
    ("POST", "/realms/acme/clients-registrations/openid-connect/../default"),
    ("POST", "/realms/acme/clients-registrations/openid-connect/%2e%2e/default"),
    ("POST", "/realms/acme/clients-registrations/default/"),
    ("POST", "//realms//acme//clients-registrations//default"),
    ("POST", "/realms/acme/./clients-registrations/default"),
    ("POST", "/realms/%61cme/clients-registrations/default"),
    ("POST", "/realms/acme/clients-registrations%2Fdefault"),
    ("POST", "/realms/acme/clients-registrations/default;jsessionid=1"),
    ("PUT", "/realms/acme/clients-registrations/default/some-client"),
    ("DELETE", "/realms/acme/clients-registrations/default/some-client"),
    ("GET", "/realms/acme/clients-registrations/install/some-client/keycloak.json"),
    ("POST", "/realms/Customers/clients-registrations/default"),
    ("POST", "/realms/Customers/clients-registrations/saml2-entity-descriptor"),
]


async def test_sibling_providers_are_refused_in_every_spelling(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    gateway = await start_gateway()
    siblings_before = sibling_total(standin)
    clients_before = {realm: standin.client_count(realm) for realm in CALLBACKS}
    for count, (method, target) in enumerate(SIBLING_TARGETS, start=1):
        reply = await raw_request(gateway, method, target, KEYCLOAK_REPRESENTATION)
        assert reply.status == 403, (method, target, reply)
        answer = reply.json()
        assert answer["error"] == "access_denied", (target, answer)
        assert rule_of(answer) == PROVIDER_REFUSED, (target, answer)
        assert reply.header("Cache-Control") == "no-store"
        events = gateway.events()
        assert len(events) == count, (target, events[-2:])
        event = events[-1]
        assert (event["event"], event["decision"], event["rule"], event["status"]) == (
            "registration",
            "denied",
            PROVIDER_REFUSED,
            403,
        ), target
        assert event["method"] == method
        assert event["upstream_status"] is None
    assert sibling_total(standin) == siblings_before, standin.sibling_calls()
    assert {realm: standin.client_count(realm) for realm in CALLBACKS} == clients_before


@pytest.mark.parametrize("realm", ["acme", "Customers"])
async def test_a_refused_sibling_is_audited_under_its_realm(
    start_gateway: StartGateway, standin: KeycloakStandIn, realm: str
) -> None:
    # The brief: every audit event carries its tenant. A refusal of a sibling provider in
    # realm Customers is a decision about Customers, taken under Customers' policy.
    gateway = await start_gateway()
    reply = await raw_request(
        gateway, "POST", f"/realms/{realm}/clients-registrations/default", KEYCLOAK_REPRESENTATION
    )
    assert reply.status == 403, reply
    [event] = gateway.events()
    assert event["rule"] == PROVIDER_REFUSED
    assert (event["tenant"], event["policy_revision"]) == (realm, REVISIONS[realm]), event


async def test_allowed_providers_reach_the_upstream_and_the_others_do_not(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    gateway = await start_gateway(allow_providers=("openid-connect", "default"))
    before = standin.sibling_calls()
    for target in (
        "/realms/acme/clients-registrations/default",
        "/realms/acme/clients-registrations/%64efault",
        "/realms/Customers/clients-registrations/default",
    ):
        reply = await raw_request(gateway, "POST", target, KEYCLOAK_REPRESENTATION)
        assert reply.status == 201, (target, reply)
        assert reply.json()["stand_in"] == "default"
    for target in (
        "/realms/acme/clients-registrations/install",
        "/realms/acme/clients-registrations/saml2-entity-descriptor",
        "/realms/acme/clients-registrations/openid-connect/../install",
    ):
        reply = await raw_request(gateway, "POST", target, KEYCLOAK_REPRESENTATION)
        assert reply.status == 403, (target, reply)
        assert rule_of(reply.json()) == PROVIDER_REFUSED
    after = standin.sibling_calls()
    gained = {key: n - before.get(key, 0) for key, n in after.items() if n - before.get(key, 0)}
    assert gained == {"acme/default": 2, "Customers/default": 1}
    # Passed through unjudged: no registration decision; the refusals are audited.
    assert [e["rule"] for e in gateway.events()] == [PROVIDER_REFUSED] * 3
    # openid-connect is still judged.
    reply = await raw_request(
        gateway, "POST", "/realms/acme" + REGISTRATION_PATH, client_metadata(EVIL_CB)
    )
    assert reply.status == 400, reply


# ---------------------------------------------------------------------- realm names and case


CASE_TARGETS = [
    ("POST", "/realms/customers/clients-registrations/openid-connect"),
    ("POST", "/realms/CUSTOMERS/clients-registrations/openid-connect"),
    ("POST", "/realms/%63ustomers/clients-registrations/openid-connect"),
    ("POST", "/realms/customers/clients-registrations/default"),
    ("GET", "/realms/customers/clients-registrations/openid-connect/some-client"),
    ("PUT", "/realms/cUSTOMERS/clients-registrations/openid-connect/some-client"),
    ("DELETE", "/realms/customers/clients-registrations/openid-connect/some-client"),
    ("GET", "/realms/customers/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-authorization-server/realms/customers"),
    ("GET", "/.well-known/openid-configuration/realms/CUSTOMERS"),
]


async def test_a_realm_differing_from_a_tenant_only_by_case_is_refused(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    gateway = await start_gateway()
    clients_before = {realm: standin.client_count(realm) for realm in CALLBACKS}
    siblings_before = sibling_total(standin)
    for count, (method, target) in enumerate(CASE_TARGETS, start=1):
        reply = await raw_request(gateway, method, target, client_metadata(CUSTOMERS_CB))
        assert reply.status == 404, (method, target, reply)
        answer = reply.json()
        assert rule_of(answer) == CASE_MISMATCH, (target, answer)
        assert "Customers" in answer["error_description"]
        events = gateway.events()
        assert len(events) == count, target
        assert events[-1]["rule"] == CASE_MISMATCH
        assert events[-1]["upstream_status"] is None
    assert {realm: standin.client_count(realm) for realm in CALLBACKS} == clients_before
    assert sibling_total(standin) == siblings_before


async def test_a_realm_that_is_no_tenant_uses_the_default_policy_in_any_case(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    # acme is no tenant: ACME (no realm of the stand-in) is judged by the default policy and,
    # allowed, forwarded as spelled; the stand-in has no such realm.
    gateway = await start_gateway()
    before = standin.client_count("acme")
    reply = await raw_request(
        gateway,
        "POST",
        "/realms/ACME/clients-registrations/openid-connect",
        client_metadata(CUSTOMERS_CB),
    )
    assert reply.status == 400, reply
    assert rule_of(reply.json()) == "redirect_uri.not_allowed"
    reply = await raw_request(
        gateway,
        "POST",
        "/realms/ACME/clients-registrations/openid-connect",
        client_metadata(ACME_CB),
    )
    assert reply.status == 404, reply
    assert reply.json() == {"error": "Realm does not exist"}
    assert standin.client_count("acme") == before
    events = gateway.registrations()
    assert [(e["tenant"], e["policy_revision"]) for e in events] == [
        ("ACME", REVISIONS["acme"]),
        ("ACME", REVISIONS["acme"]),
    ]
    assert events[1]["upstream_status"] == 404


# ---------------------------------------------------------------------- RFC 7592 in a realm


async def test_client_management_in_a_realm_follows_the_rotating_token(
    start_gateway: StartGateway, standin: KeycloakStandIn
) -> None:
    gateway = await start_gateway()
    route = KeycloakRoute(gateway.url)
    realm = "Customers"
    async with aiohttp.ClientSession() as session:
        status, client = await post_json(
            session, route.registration(realm), client_metadata(CUSTOMERS_CB, "Customers App")
        )
        assert status == 201, client
        client_id = client["client_id"]
        uri = client["registration_client_uri"]
        assert uri == f"{gateway.url}/realms/{realm}{REGISTRATION_PATH}/{client_id}"
        token = client["registration_access_token"]

        async with session.get(uri, headers=bearer(token)) as response:
            read = await response.json()
            assert response.status == 200, read
        assert read["registration_client_uri"] == uri
        assert read["redirect_uris"] == [CUSTOMERS_CB]
        assert read["registration_access_token"] != token  # rotated, like Keycloak
        token = read["registration_access_token"]

        update = without_server_fields(read) | {"client_name": "Customers App v2"}
        async with session.put(uri, json=update, headers=bearer(token)) as response:
            updated = await response.json()
            assert response.status == 200, updated
        assert updated["client_name"] == "Customers App v2"
        assert updated["registration_client_uri"] == uri
        token = updated["registration_access_token"]

        # Refused by Customers' policy: the evil rename, and acme's callback (which the
        # default policy would allow). Neither reaches the stand-in, so the token is unused.
        evil = {"client_id": client_id, "client_name": "claudeai", "redirect_uris": [EVIL_CB]}
        acme_callback = without_server_fields(updated) | {"redirect_uris": [ACME_CB]}
        for body in (evil, acme_callback):
            async with session.put(uri, json=body, headers=bearer(token)) as response:
                answer = await response.json()
                assert response.status == 400, answer
            assert answer["error"] == "invalid_redirect_uri"
            assert rule_of(answer) == "redirect_uri.not_allowed"

        async with session.get(uri, headers=bearer(token)) as response:
            current = await response.json()
            assert response.status == 200, current
        assert current["client_name"] == "Customers App v2"
        assert current["redirect_uris"] == [CUSTOMERS_CB]
        token = current["registration_access_token"]

        # The client and its token belong to Customers only.
        other = route.registration("acme") + f"/{client_id}"
        async with session.get(other, headers=bearer(token)) as response:
            assert response.status == 401, await response.text()

        before = standin.client_count(realm)
        async with session.delete(uri, headers=bearer(token)) as response:
            assert response.status == 204, await response.text()
        assert standin.client_count(realm) == before - 1
        assert client_id not in standin.client_ids(realm)

    events = gateway.events()
    assert [(e["event"], e["tenant"], e["decision"]) for e in events] == [
        ("registration", realm, "allowed"),
        ("client.read", realm, "allowed"),
        ("client.updated", realm, "allowed"),
        ("client.updated", realm, "denied"),
        ("client.updated", realm, "denied"),
        ("client.read", realm, "allowed"),
        ("client.read", "acme", "allowed"),
        ("client.deleted", realm, "allowed"),
    ]
    assert {e["client_id"] for e in events} == {client_id}
    assert events[2]["changes"] == {
        "client_name": {"from": "Customers App", "to": "Customers App v2"}
    }
    assert [e["upstream_status"] for e in events[3:5]] == [None, None]
    assert all(e["policy_revision"] == REVISIONS[e["tenant"]] for e in events)
    text = gateway.audit_text()
    for secret in (client["registration_access_token"], read["registration_access_token"], token):
        assert secret not in text


# ---------------------------------------------------------------------- discovery per realm


async def _documents(
    session: aiohttp.ClientSession, route: KeycloakRoute, realm: str
) -> dict[str, dict[str, Any]]:
    documents = {}
    for form, url in route.discovery(realm).items():
        async with session.get(url) as response:
            assert response.status == 200, (form, await response.text())
            documents[form] = await response.json()
    return documents


@pytest.mark.parametrize("realm", ["acme", "Customers"])
async def test_discovery_names_the_gateways_registration_endpoint_of_the_realm(
    start_gateway: StartGateway, standin: KeycloakStandIn, realm: str
) -> None:
    gateway = await start_gateway()
    route = KeycloakRoute(gateway.url)
    async with aiohttp.ClientSession() as session:
        documents = await _documents(session, route, realm)
        direct_url = standin.realm_url(realm) + "/.well-known/openid-configuration"
        async with session.get(direct_url, headers=forwarded_as(gateway.url)) as response:
            direct = await response.json()
    assert direct["issuer"] == route.realm_url(realm)
    for form, document in documents.items():
        assert document["issuer"] == direct["issuer"], form
        assert document["registration_endpoint"] == (
            f"{gateway.url}/realms/{realm}/clients-registrations/openid-connect"
        ), form
        # Everything else as the upstream wrote it.
        assert {k: v for k, v in document.items() if k != "registration_endpoint"} == {
            k: v for k, v in direct.items() if k != "registration_endpoint"
        }, form


async def test_a_disabled_realm_advertises_no_registration_endpoint(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(policies={"Customers": {**CUSTOMERS_POLICY, "mode": "disabled"}})
    route = KeycloakRoute(gateway.url)
    async with aiohttp.ClientSession() as session:
        customers = await _documents(session, route, "Customers")
        acme = await _documents(session, route, "acme")
        status, answer = await post_json(
            session, route.registration("Customers"), client_metadata(CUSTOMERS_CB)
        )
    for form, document in customers.items():
        assert "registration_endpoint" not in document, form
        assert document["issuer"] == route.realm_url("Customers")
    for form, document in acme.items():
        assert document["registration_endpoint"] == route.registration("acme"), form
    assert status == 403, answer
    assert answer["error"] == "access_denied"


# ---------------------------------------------------------------------- OAuth flows


@pytest.mark.parametrize("realm", ["acme", "Customers"])
async def test_authorization_code_flow_with_pkce_through_the_gateway(
    start_gateway: StartGateway, standin: KeycloakStandIn, realm: str
) -> None:
    gateway = await start_gateway()
    realm_url = KeycloakRoute(gateway.url).realm_url(realm)
    callback = CALLBACKS[realm]
    async with realm_session(realm_url) as session:
        # Discovery, registration and every step of the flow stay on the gateway's origin.
        client = await register_client(realm_url, client_metadata(callback), session=session)
        tokens = await authorization_code_flow(
            realm_url,
            client["client_id"],
            callback,
            scope="openid offline_access",
            session=session,
            check_issuer=True,
        )
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    assert client["client_id"] in standin.client_ids(realm)
    [event] = gateway.registrations()
    assert (event["tenant"], event["decision"]) == (realm, "allowed")
