"""Report-only at the authorization endpoint (bridge mode): a metadata document the policy
would refuse is bridged and its flow completes, audited ``would_deny``; a document an
enforced rule refuses gets the refusal page, as in enforce mode."""

from __future__ import annotations

import pytest

from tests.support.cimd_gateway import (
    CALLBACK,
    allowlist,
    assert_refusal_page,
    authorize,
    decisions,
    document,
    registrations,
    start_gateway,
)
from tests.support.oauth_flow import authorization_code_flow

pytestmark = pytest.mark.integration


HOST = "mcp-client.example.com"


async def test_a_document_off_the_allowlist_is_bridged_under_report_only(
    cimd_upstream, gateway_factory, cimd_authority, documents
):
    policy = allowlist([f"https://{HOST}:*/listed/*"], cimd={"allow": [], "report_only": True})
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, policy=policy)
    url = documents.url(HOST, "/oauth/client.json")
    documents.serve(HOST, "/oauth/client.json", document(url))
    before = await cimd_upstream.count()

    tokens = await authorization_code_flow(gateway.url, url, CALLBACK)
    assert tokens["access_token"]
    assert await cimd_upstream.count() == before + 1
    [registration] = registrations(gateway)
    assert registration["source"] == "cimd" and registration["status"] == 201
    seen = decisions(gateway)
    assert [(e["endpoint"], e["decision"], e["rule"]) for e in seen] == [
        ("authorization", "would_deny", "cimd.not_allowed"),
        ("token", "would_deny", "cimd.not_allowed"),
    ]
    assert seen[0]["report_only"]["group"] == "cimd"
    assert seen[0]["bridged_client_id"] == registration["client_id"]


async def test_an_enforced_group_still_refuses_a_document(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    """``cimd.report_only`` does not cover identity: a document calling itself Claude, off
    the allowlist too, is refused with the identity rule."""
    policy = allowlist([f"https://{HOST}:*/listed/*"], cimd={"allow": [], "report_only": True})
    gateway = await start_gateway(gateway_factory, cimd_upstream, cimd_authority, policy=policy)
    url = documents.url(HOST, "/oauth/claude.json")
    documents.serve(HOST, "/oauth/claude.json", document(url, client_name="Claude"))
    before = await cimd_upstream.count()
    page = await authorize(session, gateway, url)
    assert_refusal_page(page, "client_name.impersonation")
    assert await cimd_upstream.count() == before
    [decision] = decisions(gateway)
    assert (decision["decision"], decision["rule"]) == ("denied", "client_name.impersonation")
