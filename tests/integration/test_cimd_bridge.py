"""CIMD bridge mode end to end: a client whose ``client_id`` is a metadata document URL signs
in through the gateway in front of an authorization server that has no CIMD.

Everything is real: node-oidc-provider (registration only, no CIMD), the gateway
in-process, an HTTPS document server with a test CA (:mod:`tests.support.cimd_documents`).
The client never calls the registration endpoint: the gateway registers an upstream client
for the document on its first authorization request (``registration`` with ``source:
cimd``), keeps the URL -> client mapping in storage and rewrites ``client_id`` on every
request, at the authorization and the token endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from gateway.cimd.bridge import Mapping, mapping_key
from gateway.registry.entry import Source, Status
from tests.support.cimd_documents import Answer
from tests.support.cimd_gateway import (
    CALLBACK,
    OPEN,
    assert_refusal_json,
    assert_refusal_page,
    authorize,
    core,
    decisions,
    document,
    registrations,
    start_gateway,
    token_request,
)
from tests.support.lifecycle import ADMIN_TOKEN, SHARED_KEY, admin
from tests.support.oauth_flow import authorization_code_flow, refresh_access_token
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"
#: A P-256 public key (RFC 7518 §6.2.1), for a document's inline ``jwks``.
X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
PATH = "/oauth/client.json"
OIDC = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"


def serve_good(documents, path: str = PATH, **changes) -> str:
    url = documents.url(HOST, path)
    documents.serve(HOST, path, document(url, **changes))
    return url


async def mapping_of(gateway, url: str) -> Mapping | None:
    raw = await core(gateway).storage.get(mapping_key(None, url))
    return Mapping.from_bytes(raw)


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --------------------------------------------------------------------------- the flow


async def test_code_flow_with_a_url_client_id_bridges_one_upstream_client(
    cimd_upstream, gateway_factory, cimd_authority, documents
):
    """Authorization code + PKCE + token with the URL as client_id, and a refresh: one
    upstream client is created for the document (never through the client calling /reg),
    recorded in the registry with source ``cimd``, audited as one ``registration`` with
    ``source: cimd``; every request writes one ``cimd.decision`` naming the bridged client."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = serve_good(documents)
    before = await cimd_upstream.count()

    tokens = await authorization_code_flow(
        gateway.url, url, CALLBACK, scope="openid offline_access"
    )
    assert tokens["access_token"] and tokens["refresh_token"], tokens
    assert await cimd_upstream.count() == before + 1

    [registration] = registrations(gateway)
    bridged = registration["client_id"]
    assert registration["source"] == "cimd"
    assert registration["client_id_url"] == url
    assert registration["decision"] == "allowed" and registration["status"] == 201
    assert registration["redirect_uris"] == ["http://127.0.0.1/callback"]
    assert bridged and bridged != url

    entry = await core(gateway).registry.get(None, bridged)
    assert entry is not None
    assert (entry.source, entry.status) == (Source.CIMD, Status.ACTIVE)
    mapping = await mapping_of(gateway, url)
    assert mapping is not None and mapping.client_id == bridged

    # The documented limit: tokens name the bridged client, not the URL.
    assert jwt_claims(tokens["id_token"])["aud"] == bridged

    seen = decisions(gateway)
    assert [(e["endpoint"], e["method"], e["path"]) for e in seen] == [
        ("authorization", "GET", "/auth"),
        ("token", "POST", "/token"),
    ]
    for event in seen:
        assert event["decision"] == "allowed", event
        assert event["client_id_url"] == url
        assert event["bridged_client_id"] == bridged
        assert event["mode"] == "bridge"
        assert event["fetch_status"] == 200
    assert [e["cache"] for e in seen] == ["fetch", "hit"]
    assert documents.hits_of(url) == 1

    refreshed = await refresh_access_token(gateway.url, url, tokens["refresh_token"])
    assert refreshed["access_token"] and refreshed["access_token"] != tokens["access_token"]
    last = decisions(gateway)[-1]
    assert (last["endpoint"], last["decision"], last["bridged_client_id"]) == (
        "token",
        "allowed",
        bridged,
    )
    assert await cimd_upstream.count() == before + 1
    assert len(registrations(gateway)) == 1


async def test_a_second_connection_reuses_the_bridged_client(
    cimd_upstream, gateway_factory, cimd_authority, documents
):
    """A new flow for the same URL (a second connection of the same MCP client) uses the
    client bridged by the first: the upstream's client count and the registrations stay,
    the document comes from the cache, the mapping is the same."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = serve_good(documents)
    before = await cimd_upstream.count()
    await authorization_code_flow(gateway.url, url, CALLBACK)
    first = decisions(gateway)[0]["bridged_client_id"]

    second_tokens = await authorization_code_flow(
        gateway.url, url, "http://127.0.0.1:50999/callback"
    )
    assert second_tokens["access_token"]
    assert await cimd_upstream.count() == before + 1
    assert len(registrations(gateway)) == 1
    authorizations = decisions(gateway, endpoint="authorization")
    assert [e["cache"] for e in authorizations] == ["fetch", "hit"]
    assert {e["bridged_client_id"] for e in decisions(gateway)} == {first}
    assert documents.hits_of(url) == 1


async def test_two_replicas_on_one_redis_bridge_a_document_once(
    cimd_upstream, gateway_factory, cimd_authority, documents, redis_storage, session
):
    """Two gateways sharing one Redis, each getting a first authorization request for the
    same URL at the same moment: one upstream client is registered (a claim in storage),
    both requests go upstream with its id, and a full flow through the other replica
    works with it."""
    settings = {"storage": redis_storage, "registry_keys": (SHARED_KEY,)}
    a = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, **settings)
    b = await start_gateway(
        gateway_factory, cimd_upstream, cimd_authority, port=free_port(), **settings
    )
    url = serve_good(documents)
    before = await cimd_upstream.count()

    pages = await asyncio.gather(authorize(session, a, url), authorize(session, b, url))
    for page in pages:
        assert page.status == 303, page  # the upstream's answer: on to its login
        assert "/interaction/" in page.headers["Location"], page.headers
    assert await cimd_upstream.count() == before + 1
    bridged = registrations(a) + registrations(b)
    assert len(bridged) == 1, bridged
    assert {e["bridged_client_id"] for e in decisions(a) + decisions(b)} == {
        bridged[0]["client_id"]
    }

    tokens = await authorization_code_flow(b.url, url, CALLBACK, check_issuer=False)
    assert tokens["access_token"]
    assert await cimd_upstream.count() == before + 1


# --------------------------------------------------------------------------- discovery


@pytest.mark.parametrize("path", [OIDC, RFC8414])
async def test_discovery_advertises_cimd_only_when_enabled(
    cimd_upstream, gateway_factory, cimd_authority, session, path
):
    """With CIMD on, both metadata documents through the gateway say
    ``client_id_metadata_document_supported: true`` and list ``none`` among the token
    endpoint's auth methods (without which claude.ai uses DCR); with CIMD off the flag is
    absent."""
    on = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    off = await gateway_factory(cimd_upstream.url, port=free_port(), policy=OPEN)
    async with session.get(on.url + path) as response:
        assert response.status == 200
        published = await response.json()
    assert published["client_id_metadata_document_supported"] is True
    assert "none" in published["token_endpoint_auth_methods_supported"]
    assert published["registration_endpoint"].startswith(on.url)
    async with session.get(off.url + path) as response:
        assert response.status == 200
        plain = await response.json()
    assert "client_id_metadata_document_supported" not in plain
    assert plain["authorization_endpoint"].endswith("/auth")


# --------------------------------------------------------------------------- disabled


async def test_with_cimd_disabled_a_url_client_id_is_refused(
    cimd_upstream, gateway_factory, documents, session
):
    """``cimd.enabled: false`` (the default): a URL client_id at the authorization
    endpoint gets the 400 page naming ``cimd.disabled`` (no redirect), at the token endpoint
    a 401; nothing is fetched, nothing created upstream."""
    gateway = await gateway_factory(cimd_upstream.url, port=cimd_upstream.port, policy=OPEN)
    url = serve_good(documents)
    before = await cimd_upstream.count()

    page = await authorize(session, gateway, url)
    assert_refusal_page(page, "cimd.disabled")
    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "cimd.disabled", status=401)

    assert [(e["endpoint"], e["decision"], e["rule"]) for e in decisions(gateway)] == [
        ("authorization", "denied", "cimd.disabled"),
        ("token", "denied", "cimd.disabled"),
    ]
    assert registrations(gateway) == []
    assert await cimd_upstream.count() == before
    assert documents.connections == 0


# --------------------------------------------------------------------------- approval


@pytest.mark.parametrize("how", ["admin_api", "registry"])
async def test_a_bridged_client_awaits_approval_like_a_registered_one(
    cimd_upstream, gateway_factory, cimd_authority, documents, session, how
):
    """With ``approval.required`` the bridged client is pending: its authorization requests
    get the pending page (403, no redirect), its token requests 401 ``invalid_client``;
    once an administrator approves it (admin API, or the registry directly), the same URL
    completes the flow with the same bridged client."""
    policy = {**OPEN, "approval": {"required": True, "auto_approve": []}}
    gateway = await start_gateway(
        gateway_factory, cimd_upstream, cimd_authority, policy=policy, admin_token=ADMIN_TOKEN
    )
    url = serve_good(documents)
    before = await cimd_upstream.count()

    page = await authorize(session, gateway, url)
    [registration] = registrations(gateway)
    bridged = registration["client_id"]
    assert registration["client_status"] == "pending"
    entry = await core(gateway).registry.get(None, bridged)
    assert entry is not None and entry.status is Status.PENDING
    assert await cimd_upstream.count() == before + 1

    assert "Location" not in page.headers, page.headers
    assert page.headers["Content-Type"].startswith("text/html")
    assert "(approval.pending)" in page.text
    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "approval.pending", status=401)
    assert [(e["endpoint"], e["rule"]) for e in decisions(gateway, decision="denied")] == [
        ("authorization", "approval.pending"),
        ("token", "approval.pending"),
    ]

    if how == "admin_api":
        approved = await admin(session, gateway, "POST", f"{bridged}/approve")
        assert approved.status == 200, approved
    else:
        registry = core(gateway).registry
        assert await registry.replace(entry, entry.with_(status=Status.ACTIVE, reason="approved"))
        core(gateway).gate.forget(None, bridged)
    tokens = await authorization_code_flow(gateway.url, url, CALLBACK)
    assert tokens["access_token"]
    assert decisions(gateway)[-1]["bridged_client_id"] == bridged
    assert len(registrations(gateway)) == 1
    assert await cimd_upstream.count() == before + 1

    # The same page as a pending registered client's (tests/integration/test_lifecycle.py),
    # checked last so that everything above is checked even while it differs.
    assert page.status == 403, page
    assert "<h1>Awaiting approval</h1>" in page.text, page.text


async def test_a_bridged_client_deleted_by_cleanup_is_bridged_anew(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A bridged client that the lifecycle deleted (idle) is refused at the token endpoint
    (401 ``client.deleted``, so the MCP client starts over), and its next authorization
    request bridges a new upstream client for the same URL, with which the flow works."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = serve_good(documents)
    await authorization_code_flow(gateway.url, url, CALLBACK)
    first = (await mapping_of(gateway, url)).client_id
    registry = core(gateway).registry
    entry = await registry.get(None, first)
    assert await registry.replace(entry, entry.with_(status=Status.DELETED, reason="idle"))
    core(gateway).gate.forget(None, first)

    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "client.deleted", status=401)
    tokens = await authorization_code_flow(gateway.url, url, CALLBACK)
    assert tokens["access_token"]
    second = (await mapping_of(gateway, url)).client_id
    assert second != first
    assert [r["client_id"] for r in registrations(gateway)] == [first, second]
    assert decisions(gateway)[-1]["bridged_client_id"] == second


# --------------------------------------------------------------------------- changes


async def test_a_changed_document_is_judged_again(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """Once the cached copy is gone, a changed document is judged again: still allowed, the
    same upstream client is updated through RFC 7592 (``client.updated`` with ``source:
    cimd`` and what changed; the upstream now has the new name) and the flow works with it;
    then refused (now carrying a client_secret), the URL is refused at both endpoints and
    nothing more is created."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    fetcher = core(gateway).cimd_fetcher
    assert fetcher is not None
    url = serve_good(documents)
    before = await cimd_upstream.count()
    await authorization_code_flow(gateway.url, url, CALLBACK)
    first = (await mapping_of(gateway, url)).client_id

    documents.serve(HOST, PATH, document(url, client_name="Example MCP Client 2"))
    page = await authorize(session, gateway, url)
    assert page.status == 303, page  # still the cached version: nothing changes yet
    assert (await mapping_of(gateway, url)).client_id == first

    fetcher.invalidate(url)
    tokens = await authorization_code_flow(gateway.url, url, CALLBACK)
    assert tokens["access_token"]
    mapping = await mapping_of(gateway, url)
    assert mapping.client_id == first
    assert await cimd_upstream.count() == before + 1
    [updated] = [e for e in gateway.events() if e.get("event") == "client.updated"]
    assert (updated["client_id"], updated["source"], updated["status"]) == (first, "cimd", 200)
    assert updated["changes"]["client_name"] == {
        "from": "Example MCP Client",
        "to": "Example MCP Client 2",
    }
    entry = await core(gateway).registry.get(None, first)
    assert entry is not None and entry.client_name == "Example MCP Client 2"
    assert len(registrations(gateway)) == 1
    assert decisions(gateway)[-1]["bridged_client_id"] == first

    documents.serve(HOST, PATH, document(url, client_secret="now-with-a-secret"))
    fetcher.invalidate(url)
    refused = await authorize(session, gateway, url)
    assert_refusal_page(refused, "cimd.shared_secret")
    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "cimd.shared_secret", status=401)
    assert await cimd_upstream.count() == before + 1
    assert len(registrations(gateway)) == 1


async def test_a_document_that_changes_kind_bridges_a_new_client(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """A public client's document that turns ``private_key_jwt`` cannot be updated in
    place (a public client upstream has no secret): a new confidential client is
    registered, naming the one it replaces; token requests for the old kind are refused
    until the client starts again at the authorization endpoint."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    fetcher = core(gateway).cimd_fetcher
    url = serve_good(documents)
    await authorization_code_flow(gateway.url, url, CALLBACK)
    first = (await mapping_of(gateway, url)).client_id
    keys = {"keys": [{"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "k"}]}
    documents.serve(
        HOST, PATH, document(url, token_endpoint_auth_method="private_key_jwt", jwks=keys)
    )
    fetcher.invalidate(url)
    token = await token_request(session, gateway, url)
    assert_refusal_json(token, "cimd.client_auth", status=401)
    assert (await authorize(session, gateway, url)).status == 303
    mapping = await mapping_of(gateway, url)
    assert mapping.client_id != first and mapping.auth_method == "private_key_jwt"
    replacing = registrations(gateway)[-1]
    assert (replacing["replaces"], replacing["token_endpoint_auth_method"]) == (
        first,
        "client_secret_basic",
    )
    assert not [e for e in gateway.events() if e.get("event") == "client.updated"]


async def test_a_document_served_with_max_age_is_fetched_once_within_it(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """The cache honours the document's ``Cache-Control`` (at least the gateway's minimum):
    a change within that time is not seen, and the bridged client stays."""
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority)
    url = documents.url(HOST, PATH)
    documents.serve(
        HOST, PATH, Answer(document=document(url), headers={"Cache-Control": "max-age=3600"})
    )
    assert (await authorize(session, gateway, url)).status == 303
    documents.serve(HOST, PATH, document(url, client_secret="changed"))
    assert (await authorize(session, gateway, url)).status == 303
    assert documents.hits_of(url) == 1
    assert [e["cache"] for e in decisions(gateway)] == ["fetch", "hit"]
    assert len(registrations(gateway)) == 1
