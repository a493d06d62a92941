"""Report-only against the real upstream: what the policy would refuse is created upstream
and audited ``would_deny``; enforced groups, hygiene, SSRF and rate limits still refuse."""

from __future__ import annotations

import json

import aiohttp
import pytest

pytestmark = pytest.mark.integration

ALLOWED = "https://app.example.com/cb"
OTHER = "https://other.example.com/cb"
STRICT = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "none", "allow": [ALLOWED]},
    "client": {
        "token_endpoint_auth_methods": ["none", "client_secret_basic"],
        "scopes": {"allowed": ["openid"], "default": ["openid"]},
    },
}
WHOLE = {**STRICT, "enforcement": "report-only"}
REDIRECTS_ONLY = {
    **STRICT,
    "redirect_uris": {**STRICT["redirect_uris"], "report_only": True},
}
CLIENT = {
    "client_name": "Rollout App",
    "redirect_uris": [OTHER],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "openid",
}


async def post(url: str, body: object | bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        if isinstance(body, bytes):
            kwargs = {"data": body, "headers": {"Content-Type": "application/json"}}
        else:
            kwargs = {"json": body}
        async with session.post(url + "/reg", **kwargs) as response:
            return response.status, json.loads(await response.read() or b"{}")


async def test_a_would_deny_registration_is_created_upstream_and_audited(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=WHOLE)
    before = upstream.client_count()
    status, answer = await post(gateway.url, CLIENT)
    assert status == 201, answer
    assert answer["redirect_uris"] == [OTHER]
    assert answer["client_id"] in upstream.client_ids()
    assert upstream.client_count() == before + 1
    [event] = gateway.registrations()
    assert event["decision"] == "would_deny"
    assert event["rule"] == "redirect_uri.not_allowed"
    assert event["client_id"] == answer["client_id"]
    assert event["upstream_status"] == 201 and event["status"] == 201
    assert event["error"] is None
    assert event["policy_decision"] == {"decision": "would_deny", "rule": event["rule"]}
    assert event["report_only"]["group"] == "redirect_uris"
    assert event["report_only"]["error"] == "invalid_redirect_uri"
    assert "is not allowed" in event["report_only"]["error_description"]
    assert event["metadata"]["redirect_uris"] == [OTHER]
    assert answer["client_secret"] not in gateway.audit_text()


async def test_only_the_reported_group_forwards(upstream, gateway_factory):
    """``redirect_uris.report_only``: a URI outside the allow list is forwarded, while the
    client group, still enforced, refuses an auth method (even behind such a URI)."""
    gateway = await gateway_factory(upstream.url, policy=REDIRECTS_ONLY)
    before = upstream.client_count()
    status, _ = await post(gateway.url, CLIENT)
    assert status == 201
    status, refused = await post(
        gateway.url, {**CLIENT, "token_endpoint_auth_method": "client_secret_post"}
    )
    assert status == 400
    assert refused["error"] == "invalid_client_metadata"
    assert refused["error_description"].endswith("(rule auth_method.not_allowed)")
    status, refused = await post(gateway.url, {**CLIENT, "scope": "openid admin"})
    assert status == 400
    assert upstream.client_count() == before + 1
    decisions = [(e["decision"], e["rule"]) for e in gateway.registrations()]
    assert decisions == [
        ("would_deny", "redirect_uri.not_allowed"),
        ("denied", "auth_method.not_allowed"),
        ("denied", "scope.not_allowed"),
    ]


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({**CLIENT, "jwks_uri": "https://127.0.0.1/keys"}, "metadata_url.ip_address"),
        ({**CLIENT, "redirect_uris": ["https://other.example.com/cb#x"]}, "redirect_uri.fragment"),
        (
            {**CLIENT, "software_statement": "eyJhbGciOiJub25lIn0.e30."},
            "software_statement.not_accepted",
        ),
        (b'{"redirect_uris": [], "redirect_uris": []}', "request.duplicate_key"),
        (b"{not json", "request.invalid_json"),
    ],
    ids=["ssrf", "hygiene", "software-statement", "duplicate-key", "malformed"],
)
async def test_non_policy_refusals_are_still_refused(upstream, gateway_factory, body, rule):
    gateway = await gateway_factory(upstream.url, policy=WHOLE)
    before = upstream.client_count()
    status, answer = await post(gateway.url, body)
    assert 400 <= status < 500, answer
    assert answer["error_description"].endswith(f"(rule {rule})")
    assert upstream.client_count() == before
    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("denied", rule)
    assert "report_only" not in event


async def test_rate_limits_still_refuse_under_report_only(upstream, gateway_factory):
    policy = {
        **WHOLE,
        "rate_limits": [{"name": "per-ip", "key": "client_ip", "limit": "1/minute"}],
    }
    gateway = await gateway_factory(upstream.url, policy=policy)
    first, _ = await post(gateway.url, CLIENT)
    second, answer = await post(gateway.url, CLIENT)
    assert (first, second) == (201, 429)
    assert answer["error"] == "rate_limited"
    events = gateway.registrations()
    assert [e["decision"] for e in events] == ["would_deny", "denied"]
    # The policy's own verdict is kept apart from the limit that refused.
    assert events[1]["rule"] == "rate_limit.per-ip"
    assert events[1]["policy_decision"]["decision"] == "would_deny"


async def test_an_rfc7592_update_the_policy_would_refuse_is_forwarded(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=REDIRECTS_ONLY)
    status, client = await post(gateway.url, {**CLIENT, "redirect_uris": [ALLOWED]})
    assert status == 201
    update = {
        key: value
        for key, value in client.items()
        if key
        not in (
            "registration_access_token",
            "registration_client_uri",
            "client_secret_expires_at",
            "client_id_issued_at",
        )
    }
    update["redirect_uris"] = [OTHER]
    bearer = {"Authorization": f"Bearer {client['registration_access_token']}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(
            client["registration_client_uri"], json=update, headers=bearer
        ) as put:
            assert put.status == 200, await put.text()
            assert (await put.json())["redirect_uris"] == [OTHER]
    [event] = [e for e in gateway.events() if e["event"] == "client.updated"]
    assert (event["decision"], event["rule"]) == ("would_deny", "redirect_uri.not_allowed")
    assert event["metadata"]["client_secret"] == "<omitted>"
    assert client["client_secret"] not in gateway.audit_text()
    assert client["registration_access_token"] not in gateway.audit_text()
