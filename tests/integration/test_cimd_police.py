"""CIMD police mode: the upstream has CIMD itself; the gateway vets every document first.

The upstream is node-oidc-provider with ``features.clientIdMetadataDocument`` on
(``CIMD_HOSTS`` in tests/upstream/server.mjs: its fetches of the test host names go to the
loopback document server, and ``NODE_EXTRA_CA_CERTS`` trusts the test CA).  The gateway
(``cimd.mode: police``) fetches and judges the document and forwards the request unchanged
when allowed, so the upstream sees the URL as the client id and fetches the document
itself; a refused one never reaches the upstream, which therefore never fetches it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.support.cimd_documents import HOSTS
from tests.support.cimd_gateway import (
    CALLBACK,
    FlowUpstream,
    allowlist,
    assert_refusal_page,
    authorize,
    decisions,
    document,
    registrations,
    start_gateway,
)
from tests.support.oauth_flow import authorization_code_flow
from tests.support.upstream import UpstreamServer, free_port

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"
OIDC = "/.well-known/openid-configuration"


@pytest.fixture(scope="module")
def police_upstream(cimd_authority) -> Iterator[FlowUpstream]:
    """node-oidc-provider with CIMD, reaching the test document server."""
    port = free_port()
    server = UpstreamServer().start(
        issuer=f"http://127.0.0.1:{port}",
        extra_env={
            "CIMD_HOSTS": ",".join(HOSTS),
            "NODE_EXTRA_CA_CERTS": str(cimd_authority.ca_file),
        },
    )
    try:
        yield FlowUpstream(server, port)
    finally:
        server.stop()


def native(url: str, **changes) -> dict:
    """A loopback client's document as node-oidc-provider takes it (``native``: any port)."""
    return document(url, application_type="native", **changes)


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_an_allowed_document_reaches_the_upstream_as_a_url(
    police_upstream, gateway_factory, cimd_authority, documents
):
    """Police mode, an allowed document: the flow completes with the URL as the client id
    at the upstream (the ID token's ``aud`` is the URL), nothing is registered, the
    upstream fetched the document itself (a second fetch), and the gateway's decisions
    name no bridged client."""
    policy = allowlist([f"https://{HOST}:*/oauth/*"])
    gateway = await start_gateway(
        gateway_factory, police_upstream, cimd_authority, policy=policy, mode="police"
    )
    url = documents.serve(
        HOST, "/oauth/client.json", native(documents.url(HOST, "/oauth/client.json"))
    )
    before = await police_upstream.count()

    tokens = await authorization_code_flow(gateway.url, url, CALLBACK)
    assert tokens["access_token"]
    assert claims(tokens["id_token"])["aud"] == url
    assert registrations(gateway) == []
    assert await police_upstream.count() == before  # CIMD clients are not stored
    assert documents.hits_of(url) == 2  # the gateway's fetch and the upstream's
    seen = decisions(gateway)
    assert [(e["endpoint"], e["decision"], e["mode"]) for e in seen] == [
        ("authorization", "allowed", "police"),
        ("token", "allowed", "police"),
    ]
    assert all(e.get("bridged_client_id") is None for e in seen)


async def test_a_refused_document_never_reaches_the_upstream(
    police_upstream, gateway_factory, cimd_authority, documents, session
):
    """Police mode, documents the upstream itself would take but the policy refuses (a URL
    off the allowlist, a client calling itself Claude): the gateway's 400 page, and the
    upstream never saw the request, so it never fetched the document."""
    policy = allowlist([f"https://{HOST}:*/oauth/*"])
    gateway = await start_gateway(
        gateway_factory, police_upstream, cimd_authority, policy=policy, mode="police"
    )
    off_list = documents.serve(
        HOST, "/elsewhere/client.json", native(documents.url(HOST, "/elsewhere/client.json"))
    )
    claude = documents.serve(
        HOST,
        "/oauth/claude.json",
        native(documents.url(HOST, "/oauth/claude.json"), client_name="Claude"),
    )
    for url, rule in ((off_list, "cimd.not_allowed"), (claude, "client_name.impersonation")):
        page = await authorize(session, gateway, url)
        assert_refusal_page(page, rule)
        assert documents.hits_of(url) == 1, url  # the gateway's fetch only
    assert [e["rule"] for e in decisions(gateway)] == [
        "cimd.not_allowed",
        "client_name.impersonation",
    ]


async def test_discovery_flag_follows_the_gateway_not_the_upstream(
    police_upstream, gateway_factory, cimd_authority, session
):
    """The upstream advertises CIMD itself; through a gateway with CIMD off the flag is
    removed (its clients would otherwise send URLs the gateway refuses), through one in
    police mode it is there."""
    async with session.get(police_upstream.url + OIDC) as response:
        assert (await response.json())["client_id_metadata_document_supported"] is True
    off = await gateway_factory(police_upstream.url, port=free_port())
    police = await start_gateway(gateway_factory, police_upstream, cimd_authority, mode="police")
    async with session.get(off.url + OIDC) as response:
        assert "client_id_metadata_document_supported" not in await response.json()
    async with session.get(police.url + OIDC) as response:
        assert (await response.json())["client_id_metadata_document_supported"] is True
