"""CIMD bridge mode in front of Keycloak (the stand-in, realms ``acme`` and ``Customers``).

Real parts: the Keycloak stand-in (one node-oidc-provider per realm, Keycloak's URL
layout, no CIMD), the gateway in-process with the ``keycloak`` profile and realms as
tenants, and the HTTPS document server with a test CA.  The stand-in records what reaches
each realm's client endpoints (``/__test/requests``), so the tests see the request as the
upstream got it: the ``client_id`` after the gateway rewrote it, and how the client
authenticated.

``acme`` is judged by the default policy, ``Customers`` by its own; both allow the
documents under ``/oauth/``, only ``acme`` those under ``/acme-only/``.  The stand-in is
shared by the module, so its records are compared before and after.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.cimd.bridge import Mapping, mapping_key
from gateway.config.settings import Cimd
from gateway.policy.loader import policy_from_mapping
from gateway.registry.entry import Source
from tests.support import keycloak
from tests.support.cimd_gateway import (
    CALLBACK,
    Page,
    allowlist,
    assert_refusal_json,
    assert_refusal_page,
    authorization_params,
    cimd_on,
    core,
    decisions,
    document,
)
from tests.support.gateway import RunningGateway
from tests.support.keycloak import REGISTRATION_PATH, KeycloakStandIn, realm_session
from tests.support.keycloak_gateway import KeycloakRoute
from tests.support.oauth_flow import JWT_BEARER, authorization_code_flow, refresh_access_token
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"
AGENT_HOST = "other-client.example.com"
PATH = "/oauth/client.json"
ACME_ONLY = "/acme-only/client.json"
JWKS_PATH = "/oauth/jwks.json"
TOKEN = "/protocol/openid-connect/token"
AUTH = "/protocol/openid-connect/auth"
REVOKE = "/protocol/openid-connect/revoke"

ACME_POLICY = allowlist(
    [
        f"https://{HOST}:*/oauth/*",
        f"https://{HOST}:*/acme-only/*",
        f"https://{AGENT_HOST}:*/oauth/*",
    ]
)
CUSTOMERS_POLICY = allowlist([f"https://{HOST}:*/oauth/*", f"https://{AGENT_HOST}:*/oauth/*"])
REVISIONS = {
    "acme": policy_from_mapping(ACME_POLICY).revision,
    "Customers": policy_from_mapping(CUSTOMERS_POLICY).revision,
}
REALMS = ("acme", "Customers")

StartGateway = Callable[..., Awaitable[RunningGateway]]


gateway_port = keycloak.gateway_port
standin = keycloak.standin


@pytest.fixture
def start_gateway(
    gateway_factory: Any, standin: KeycloakStandIn, gateway_port: int, cimd_authority: Any
) -> StartGateway:
    """A keycloak-profile gateway with CIMD bridging in front of the stand-in."""

    async def start(**settings: Any) -> RunningGateway:
        settings.setdefault("policy", ACME_POLICY)
        settings.setdefault("policies", {"Customers": CUSTOMERS_POLICY})
        settings.setdefault("cimd", cimd_on(cimd_authority))
        settings.setdefault("port", gateway_port)
        return await gateway_factory(standin.url, profile="keycloak", **settings)

    return start


def serve_public(documents: Any, path: str = PATH) -> str:
    url = documents.url(HOST, path)
    documents.serve(HOST, path, document(url))
    return url


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def mapping_of(gateway: RunningGateway, realm: str, url: str) -> Mapping | None:
    return Mapping.from_bytes(await core(gateway).storage.get(mapping_key(realm, url)))


async def authorize_in(
    session: aiohttp.ClientSession, gateway: RunningGateway, realm: str, client_id: str
) -> Page:
    """``GET <realm>/protocol/openid-connect/auth`` for ``client_id``, not followed."""
    target = KeycloakRoute(gateway.url).realm_url(realm) + AUTH
    async with session.get(
        target, params=authorization_params(client_id), allow_redirects=False
    ) as response:
        return Page(response.status, dict(response.headers), await response.text())


async def code_flow(
    gateway: RunningGateway, realm: str, client_id: str, **kwargs: Any
) -> dict[str, Any]:
    """Authorization code + PKCE through the gateway, discovering at the realm (the issuer
    is checked, as MCP clients do)."""
    realm_url = KeycloakRoute(gateway.url).realm_url(realm)
    async with realm_session(realm_url) as session:
        return await authorization_code_flow(
            realm_url, client_id, CALLBACK, session=session, check_issuer=True, **kwargs
        )


def new_requests(standin: KeycloakStandIn, realm: str, before: int) -> list[dict[str, Any]]:
    return standin.requests(realm)[before:]


# --------------------------------------------------------------------------- a public client


async def test_a_public_client_is_bridged_through_its_realm(
    start_gateway: StartGateway, standin: KeycloakStandIn, documents: Any
) -> None:
    """The code flow with the URL as client_id at ``acme``'s endpoints: one upstream client
    is registered through ``acme``'s registration path (audited, recorded with source
    ``cimd``), and every request reaches the realm with ``client_id`` rewritten to it, the
    URL never; the token and refresh requests too, without credentials (a public client)."""
    gateway = await start_gateway()
    url = serve_public(documents)
    seen = {realm: len(standin.requests(realm)) for realm in REALMS}
    clients = {realm: set(standin.client_ids(realm)) for realm in REALMS}

    tokens = await code_flow(gateway, "acme", url)
    assert tokens["access_token"] and tokens["refresh_token"], tokens
    realm_url = KeycloakRoute(gateway.url).realm_url("acme")
    async with realm_session(realm_url) as session:
        refreshed = await refresh_access_token(
            realm_url, url, tokens["refresh_token"], session=session
        )
    assert refreshed["access_token"]

    [registration] = gateway.registrations()
    bridged = registration["client_id"]
    assert (registration["tenant"], registration["source"]) == ("acme", "cimd")
    assert registration["path"] == "/realms/acme" + REGISTRATION_PATH
    assert registration["client_id_url"] == url
    assert registration["policy_revision"] == REVISIONS["acme"]
    assert set(standin.client_ids("acme")) == clients["acme"] | {bridged}
    assert set(standin.client_ids("Customers")) == clients["Customers"]
    entry = await core(gateway).registry.get("acme", bridged)
    assert entry is not None and entry.source is Source.CIMD
    assert (await mapping_of(gateway, "acme", url)).client_id == bridged  # type: ignore[union-attr]
    assert await mapping_of(gateway, "Customers", url) is None

    arrived = new_requests(standin, "acme", seen["acme"])
    assert [r["route"] for r in arrived] == ["authorization", "token", "token"], arrived
    for request in arrived:
        assert request["client_id"] == bridged, request
        assert request["auth_scheme"] is None and not request["client_assertion"], request
    assert [r["status"] for r in arrived if r["route"] == "token"] == [200, 200]
    assert new_requests(standin, "Customers", seen["Customers"]) == []
    # The documented limit: tokens name the bridged client.
    assert jwt_claims(tokens["id_token"])["aud"] == bridged

    events = decisions(gateway)
    assert [(e["endpoint"], e["path"], e["tenant"]) for e in events] == [
        ("authorization", "/realms/acme" + AUTH, "acme"),
        ("token", "/realms/acme" + TOKEN, "acme"),
        ("token", "/realms/acme" + TOKEN, "acme"),
    ]
    for event in events:
        assert (event["decision"], event["bridged_client_id"]) == ("allowed", bridged), event
    assert documents.hits_of(url) == 1


# --------------------------------------------------------------------------- two realms


async def test_each_realm_bridges_its_own_client_under_its_own_policy(
    start_gateway: StartGateway, standin: KeycloakStandIn, documents: Any, session: Any
) -> None:
    """One document URL used in both realms: two upstream clients, each registered in its
    own realm under that realm's policy, and mapped per realm; a document only ``acme``'s
    policy allows is bridged there and refused in ``Customers``, which creates nothing."""
    gateway = await start_gateway()
    url = serve_public(documents)
    clients = {realm: set(standin.client_ids(realm)) for realm in REALMS}

    for realm in REALMS:
        tokens = await code_flow(gateway, realm, url)
        assert tokens["access_token"], (realm, tokens)

    events = gateway.registrations()
    assert [(e["tenant"], e["decision"], e["source"]) for e in events] == [
        ("acme", "allowed", "cimd"),
        ("Customers", "allowed", "cimd"),
    ]
    bridged = {e["tenant"]: e["client_id"] for e in events}
    assert bridged["acme"] != bridged["Customers"]
    for event in events:
        assert event["policy_revision"] == REVISIONS[event["tenant"]], event
        assert event["path"] == f"/realms/{event['tenant']}{REGISTRATION_PATH}", event
    for realm in REALMS:
        assert set(standin.client_ids(realm)) == clients[realm] | {bridged[realm]}, realm
        mapping = await mapping_of(gateway, realm, url)
        assert mapping is not None and mapping.client_id == bridged[realm]
    for event in decisions(gateway):
        assert event["bridged_client_id"] == bridged[event["tenant"]], event

    acme_only = serve_public(documents, ACME_ONLY)
    before = {realm: set(standin.client_ids(realm)) for realm in REALMS}
    page = await authorize_in(session, gateway, "acme", acme_only)
    assert page.status == 303 and "/interaction/" in page.headers["Location"], page
    refused = await authorize_in(session, gateway, "Customers", acme_only)
    assert_refusal_page(refused, "cimd.not_allowed")
    assert len(standin.client_ids("acme")) == len(before["acme"]) + 1
    assert set(standin.client_ids("Customers")) == before["Customers"]
    [denied] = decisions(gateway, tenant="Customers", client_id_url=acme_only)
    assert (denied["decision"], denied["rule"]) == ("denied", "cimd.not_allowed")
    assert denied["policy_revision"] == REVISIONS["Customers"]


async def test_a_client_bridged_in_one_realm_is_not_bridged_in_another(
    start_gateway: StartGateway, standin: KeycloakStandIn, documents: Any, session: Any
) -> None:
    """Mappings are per realm: a token request at ``Customers`` for a document bridged
    only in ``acme`` has no client to be rewritten to, and never reaches the realm."""
    gateway = await start_gateway()
    url = serve_public(documents)
    page = await authorize_in(session, gateway, "acme", url)
    assert page.status == 303, page
    seen = len(standin.requests("Customers"))
    data = {
        "grant_type": "authorization_code",
        "code": "not-a-code",
        "redirect_uri": CALLBACK,
        "code_verifier": "v" * 43,
        "client_id": url,
    }
    target = KeycloakRoute(gateway.url).realm_url("Customers") + TOKEN
    async with session.post(target, data=data) as response:
        answer = Page(response.status, dict(response.headers), await response.text())
    assert_refusal_json(answer, "cimd.not_bridged", status=401)
    assert new_requests(standin, "Customers", seen) == []


# --------------------------------------------------------------------------- private_key_jwt


class SigningClient:
    """A ChatGPT-shaped client: ``private_key_jwt`` with its keys at ``jwks_uri``."""

    def __init__(self, documents: Any) -> None:
        self.url = documents.url(AGENT_HOST, PATH)
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1", "use": "sig"})
        keys = {"keys": [self.key.as_dict(private=False)]}
        fields = {
            "token_endpoint_auth_method": "private_key_jwt",
            "client_name": "Example Agent Platform",
            "jwks_uri": documents.url(AGENT_HOST, JWKS_PATH),
        }
        documents.serve(AGENT_HOST, PATH, document(self.url, **fields))
        documents.serve(AGENT_HOST, JWKS_PATH, keys)

    def assertion(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": self.url,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, self.key, algorithms=["ES256"])


def made_up_grant(client: SigningClient, assertion: str) -> dict[str, str]:
    """A token request with a code nobody issued: when the gateway lets it through, the
    realm answers ``invalid_grant``, having authenticated the client first."""
    return {
        "grant_type": "authorization_code",
        "code": "not-a-code",
        "redirect_uri": CALLBACK,
        "code_verifier": "v" * 43,
        "client_id": client.url,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }


async def post_form(session: Any, url: str, data: dict[str, str]) -> Page:
    async with session.post(url, data=data) as response:
        return Page(response.status, dict(response.headers), await response.text())


async def test_a_private_key_jwt_client_is_bridged_as_a_confidential_realm_client(
    start_gateway: StartGateway, standin: KeycloakStandIn, documents: Any, session: Any
) -> None:
    """Code flow, refresh and revocation (RFC 7009) at ``acme``'s endpoints, each with an
    assertion addressed to the endpoint: the realm's client is a ``client_secret_basic``
    one, and every request reaches the realm with HTTP Basic as the bridged client and
    no assertion."""
    gateway = await start_gateway()
    client = SigningClient(documents)
    seen = len(standin.requests("acme"))

    tokens = await code_flow(gateway, "acme", client.url, client_assertion=client.assertion)
    realm_url = KeycloakRoute(gateway.url).realm_url("acme")
    async with realm_session(realm_url) as flow_session:
        refreshed = await refresh_access_token(
            realm_url,
            client.url,
            tokens["refresh_token"],
            client_assertion=client.assertion,
            session=flow_session,
        )
    revoke = {
        "token": refreshed["refresh_token"],
        "token_type_hint": "refresh_token",
        "client_id": client.url,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client.assertion(realm_url + REVOKE),
    }
    revoked = await post_form(session, realm_url + REVOKE, revoke)
    assert revoked.status == 200, revoked

    [registration] = gateway.registrations()
    bridged = registration["client_id"]
    assert registration["tenant"] == "acme"
    assert registration["token_endpoint_auth_method"] == "client_secret_basic"
    mapping = await mapping_of(gateway, "acme", client.url)
    assert mapping is not None and mapping.auth_method == "private_key_jwt"
    secret = core(gateway).sealer.unseal(mapping.sealed_secret)
    assert secret and secret not in json.dumps(gateway.events())

    arrived = new_requests(standin, "acme", seen)
    assert [(r["route"], r["status"]) for r in arrived] == [
        ("authorization", 303),
        ("token", 200),
        ("token", 200),
        ("revocation", 200),
    ], arrived
    for request in arrived[1:]:
        assert (request["auth_scheme"], request["basic_user"]) == ("Basic", bridged), request
        assert not request["client_assertion"], request
        assert request["client_id"] in (None, bridged), request
    assert [e["endpoint"] for e in decisions(gateway, decision="allowed")] == [
        "authorization",
        "token",
        "token",
        "token",
    ]
    assert decisions(gateway, decision="allowed")[-1]["path"] == "/realms/acme" + REVOKE


@pytest.mark.parametrize("audience", ["issuer", "token endpoint"])
async def test_the_realms_issuer_and_token_endpoint_are_accepted_audiences(
    start_gateway: StartGateway,
    standin: KeycloakStandIn,
    documents: Any,
    session: Any,
    audience: str,
) -> None:
    gateway = await start_gateway()
    client = SigningClient(documents)
    page = await authorize_in(session, gateway, "acme", client.url)
    assert page.status == 303, page
    bridged = (await mapping_of(gateway, "acme", client.url)).client_id  # type: ignore[union-attr]
    realm_url = KeycloakRoute(gateway.url).realm_url("acme")
    aud = realm_url if audience == "issuer" else realm_url + TOKEN
    seen = len(standin.requests("acme"))
    answer = await post_form(
        session, realm_url + TOKEN, made_up_grant(client, client.assertion(aud))
    )
    assert answer.status == 400 and answer.json()["error"] == "invalid_grant", answer
    [request] = new_requests(standin, "acme", seen)
    assert (request["route"], request["auth_scheme"], request["basic_user"]) == (
        "token",
        "Basic",
        bridged,
    )
    assert not request["client_assertion"]


@pytest.mark.parametrize("audience", ["sibling issuer", "sibling token endpoint"])
async def test_an_assertion_for_a_sibling_realm_is_refused(
    start_gateway: StartGateway,
    standin: KeycloakStandIn,
    documents: Any,
    session: Any,
    audience: str,
) -> None:
    """An assertion minted for ``Customers`` (its issuer or its token endpoint, through
    the same gateway) is no good at ``acme``: a realm accepts only assertions addressed
    to itself, and the request never reaches the realm."""
    gateway = await start_gateway()
    client = SigningClient(documents)
    page = await authorize_in(session, gateway, "acme", client.url)
    assert page.status == 303, page
    route = KeycloakRoute(gateway.url)
    sibling = {
        "sibling issuer": route.realm_url("Customers"),
        "sibling token endpoint": route.realm_url("Customers") + TOKEN,
    }[audience]
    seen = len(standin.requests("acme"))
    answer = await post_form(
        session, route.realm_url("acme") + TOKEN, made_up_grant(client, client.assertion(sibling))
    )
    assert_refusal_json(answer, "cimd.client_auth", status=401)
    assert new_requests(standin, "acme", seen) == []
    [event] = decisions(gateway, endpoint="token")
    assert (event["tenant"], event["decision"], event["rule"]) == (
        "acme",
        "denied",
        "cimd.client_auth",
    )


# --------------------------------------------------------------------------- discovery


async def test_realm_discovery_advertises_cimd_when_it_is_on(
    start_gateway: StartGateway, session: Any
) -> None:
    """Every form of a realm's metadata through the gateway says
    ``client_id_metadata_document_supported: true`` and lists ``none``; a gateway with
    CIMD off says nothing of it."""
    on = await start_gateway()
    off = await start_gateway(cimd=Cimd(), port=free_port())
    for realm in REALMS:
        for form, url in KeycloakRoute(on.url).discovery(realm).items():
            if form == "realm-uma2":
                continue  # UMA 2.0's document is not where an MCP client looks
            async with session.get(url) as response:
                assert response.status == 200, (realm, form)
                published = await response.json()
            assert published["client_id_metadata_document_supported"] is True, (realm, form)
            assert "none" in published["token_endpoint_auth_methods_supported"], (realm, form)
            assert published["token_endpoint"] == f"{on.url}/realms/{realm}{TOKEN}"
        async with session.get(KeycloakRoute(off.url).discovery(realm)["realm"]) as response:
            assert response.status == 200
            plain = await response.json()
        assert "client_id_metadata_document_supported" not in plain, realm
