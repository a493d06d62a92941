"""The guarded registration endpoint against the real upstream: hygiene, forward, audit."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

import aiohttp
import pytest

from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
DISABLED = {"version": 1, "mode": "disabled"}

# What an MCP SDK client sends (loopback, public client).
MCP_CLIENT = {
    "response_types": ["code"],
    "scope": "mcp:execute offline_access",
    "client_name": "Integration Agent",
    "redirect_uris": ["http://127.0.0.1:43210/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}
WEB_CLIENT = {
    "client_name": "Web App",
    "redirect_uris": ["https://app.example.com/oauth/callback"],
    "scope": "openid",
}
AUDIT_FIELDS = {
    "event",
    "timestamp",
    "request_id",
    "client_ip",
    "user_agent",
    "method",
    "path",
    "decision",
    "rule",
    "error",
    "error_description",
    "client_name",
    "software_id",
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "scope",
    "upstream_status",
    "client_id",
    "latency_ms",
}


def only_event(gateway) -> dict:
    events = gateway.registrations()
    assert len(events) == 1, events
    return events[0]


async def post(url: str, *, json_body=None, data=None, headers=None):
    async with aiohttp.ClientSession() as session:
        kwargs = {"headers": headers or {}}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with session.post(url, **kwargs) as response:
            return response.status, dict(response.headers), await response.read()


async def test_registration_succeeds_and_is_audited(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    before = upstream.client_count()
    status, headers, raw = await post(
        gateway.url + "/reg",
        json_body=MCP_CLIENT,
        headers={"User-Agent": "itest/1.0", "X-Request-ID": "reg-1"},
    )
    assert status == 201, raw
    answer = json.loads(raw)
    assert headers["X-Request-ID"] != "reg-1" and len(headers["X-Request-ID"]) == 32
    assert upstream.client_count() == before + 1
    assert answer["client_id"] in upstream.client_ids()

    # The client exists upstream: read it back with its registration access token.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            answer["registration_client_uri"],
            headers={"Authorization": f"Bearer {answer['registration_access_token']}"},
        ) as response,
    ):
        assert response.status == 200
        read_back = await response.json()
    assert read_back["client_id"] == answer["client_id"]
    assert read_back["redirect_uris"] == MCP_CLIENT["redirect_uris"]

    event = only_event(gateway)
    assert set(event) >= AUDIT_FIELDS
    assert event["event"] == "registration"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", event["timestamp"])
    assert event["request_id"] == headers["X-Request-ID"]
    assert event["client_request_id"] == "reg-1"
    assert event["client_ip"] == "127.0.0.1"
    assert event["user_agent"] == "itest/1.0"
    assert event["method"] == "POST"
    assert event["path"] == "/reg"
    assert event["decision"] == "allowed"
    assert event["rule"] == "allow.managed"
    assert event["error"] is None
    assert event["client_name"] == "Integration Agent"
    assert event["redirect_uris"] == MCP_CLIENT["redirect_uris"]
    assert event["token_endpoint_auth_method"] == "none"
    assert event["grant_types"] == ["authorization_code", "refresh_token"]
    assert event["scope"] == "mcp:execute offline_access"
    assert event["upstream_status"] == 201
    assert event["client_id"] == answer["client_id"]
    assert event["latency_ms"] > 0


async def test_no_secret_reaches_the_audit_log(upstream, gateway_factory):
    token = "initial-access-token-SECRET"
    tokens = {"tokens": [{"name": "itest", "sha256": hashlib.sha256(token.encode()).hexdigest()}]}
    gateway = await gateway_factory(upstream.url, policy={**OPEN, "initial_access_tokens": tokens})
    confidential = {**WEB_CLIENT, "token_endpoint_auth_method": "client_secret_basic"}
    status, _, raw = await post(
        gateway.url + "/reg",
        json_body=confidential,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 201, raw
    assert only_event(gateway)["initial_access_token_name"] == "itest"
    answer = json.loads(raw)
    assert answer["client_secret"]
    text = gateway.audit_text()
    assert answer["client_id"] in text
    for secret in (
        answer["client_secret"],
        answer["registration_access_token"],
        token,
        hashlib.sha256(token.encode()).hexdigest(),
    ):
        assert secret not in text
    assert "authorization" not in text.lower()


async def test_forwarded_body_is_the_judged_metadata(upstream, gateway_factory):
    # Point the guard at the echo endpoint to see exactly what reaches the upstream.
    gateway = await gateway_factory(upstream.url, registration_paths=("/__test/echo",), policy=OPEN)
    raw_body = (
        b'{ "redirect_uris" : ["https://app.example.com/cb"],\n "x-extension": {"a": [1, 2]} }'
    )
    status, _, raw = await post(
        gateway.url + "/__test/echo",
        data=raw_body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 200, raw
    echo = json.loads(raw)
    forwarded = json.loads(echo["body"])
    assert echo["body"] != raw_body.decode()
    assert echo["headers"]["content-length"] == str(len(echo["body"].encode()))
    assert echo["headers"]["content-type"] == "application/json"
    assert forwarded["redirect_uris"] == ["https://app.example.com/cb"]
    assert forwarded["x-extension"] == {"a": [1, 2]}
    # Defaults were injected before forwarding.
    assert forwarded["token_endpoint_auth_method"] == "client_secret_basic"
    assert forwarded["grant_types"] == ["authorization_code"]
    assert forwarded["response_types"] == ["code"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "error", "rule"),
    [
        pytest.param(
            {"Content-Type": "text/plain"},
            b"{}",
            415,
            "invalid_request",
            "request.content_type",
            id="text-plain",
        ),
        pytest.param(
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"a=b",
            415,
            "invalid_request",
            "request.content_type",
            id="form",
        ),
        pytest.param(
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            b"\x1f\x8b\x08\x00",
            415,
            "invalid_request",
            "request.content_encoding",
            id="gzip",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b"{not json",
            400,
            "invalid_client_metadata",
            "request.invalid_json",
            id="bad-json",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b'{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/"]}',
            400,
            "invalid_client_metadata",
            "request.duplicate_key",
            id="duplicate-key",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b'["https://a.example/cb"]',
            400,
            "invalid_client_metadata",
            "request.not_object",
            id="array",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b'{"redirect_uris":"https://a.example/cb"}',
            400,
            "invalid_client_metadata",
            "metadata.invalid_type",
            id="wrong-type",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b"\xff\xfe{}",
            400,
            "invalid_client_metadata",
            "request.invalid_json",
            id="not-utf8",
        ),
    ],
)
async def test_hygiene_refusals(upstream, gateway_factory, headers, body, status, error, rule):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = upstream.client_count()
    got_status, got_headers, raw = await post(gateway.url + "/reg", data=body, headers=headers)
    assert got_status == status, raw
    answer = json.loads(raw)
    assert answer["error"] == error
    assert answer["error_description"]
    assert got_headers["Content-Type"].startswith("application/json")
    assert got_headers["Cache-Control"] == "no-store"
    assert upstream.client_count() == before
    event = only_event(gateway)
    assert event["decision"] == "denied"
    assert event["rule"] == rule
    assert event["error"] == error
    assert event["upstream_status"] is None


async def test_body_over_the_limit_is_413(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=OPEN, max_body_bytes=1024)
    big = json.dumps({**WEB_CLIENT, "padding": "x" * 2000}).encode()
    status, _, raw = await post(
        gateway.url + "/reg", data=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert json.loads(raw)["error"] == "invalid_request"
    assert only_event(gateway)["rule"] == "request.too_large"


async def test_chunked_body_over_the_limit_is_413(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=OPEN, max_body_bytes=1024)

    async def chunks():
        yield b'{"client_name": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    status, _, _ = await post(
        gateway.url + "/reg", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert only_event(gateway)["rule"] == "request.too_large"


async def test_get_on_registration_path_is_405(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url + "/reg") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST, OPTIONS"
            assert (await response.json())["error"] == "invalid_request"
    assert only_event(gateway)["rule"] == "request.method"


async def test_disabled_mode_refuses_and_creates_nothing(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=DISABLED)
    before = upstream.client_count()
    status, _, raw = await post(gateway.url + "/reg", json_body=MCP_CLIENT)
    assert status == 403
    assert json.loads(raw)["error"] == "access_denied"
    assert upstream.client_count() == before
    event = only_event(gateway)
    assert (event["decision"], event["rule"]) == ("denied", "mode.disabled")


@pytest.mark.parametrize("path", ["/REG", "/reg/", "//reg", "/x/../reg", "/%72eg", "/reg;a=b"])
async def test_path_variants_are_guarded(upstream, gateway_factory, path):
    gateway = await gateway_factory(upstream.url, policy=DISABLED)
    before = upstream.client_count()
    port = int(gateway.url.rsplit(":", 1)[1])
    body = json.dumps(WEB_CLIENT).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 403"), raw[:200]
    assert upstream.client_count() == before
    assert only_event(gateway)["rule"] == "mode.disabled"


async def test_upstream_down_is_502_and_audited(gateway_factory):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, registration_paths=("/reg",), policy=OPEN)
    status, _, raw = await post(gateway.url + "/reg", json_body=WEB_CLIENT)
    assert status == 502
    assert json.loads(raw)["error"] == "temporarily_unavailable"
    event = only_event(gateway)
    assert (event["decision"], event["rule"]) == ("error", "upstream.unreachable")
    assert event["upstream_status"] is None


async def test_upstream_timeout_is_504_and_audited(upstream, gateway_factory):
    gateway = await gateway_factory(
        upstream.url, registration_paths=("/__test/slow",), policy=OPEN, timeout=0.3
    )
    status, _, raw = await post(gateway.url + "/__test/slow?ms=2000", json_body=WEB_CLIENT)
    assert status == 504
    assert json.loads(raw)["error"] == "temporarily_unavailable"
    event = only_event(gateway)
    assert (event["decision"], event["rule"]) == ("error", "upstream.timeout")


async def test_upstream_refusal_is_relayed_and_audited(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    # node-oidc-provider refuses scopes it does not offer.
    status, _, raw = await post(
        gateway.url + "/reg", json_body={**WEB_CLIENT, "scope": "openid unknown:scope"}
    )
    assert status == 400
    assert json.loads(raw)["error"] == "invalid_client_metadata"
    event = only_event(gateway)
    assert event["decision"] == "allowed"
    assert event["upstream_status"] == 400
    assert event["upstream_error"] == "invalid_client_metadata"
    assert event["client_id"] is None


async def test_client_hanging_up_mid_body_is_audited(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = upstream.client_count()
    port = int(gateway.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /reg HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500\r\nX-Request-ID: gone-1\r\n\r\n" + b'{"client_name": "hal'
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(50):
        if gateway.registrations():
            break
        await asyncio.sleep(0.05)
    event = only_event(gateway)
    assert event["client_request_id"] == "gone-1"
    assert event["decision"] == "error"
    assert event["rule"] == "client.disconnected"
    assert event["client_disconnected"] is True
    assert upstream.client_count() == before


async def test_each_request_gets_exactly_one_event(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    bodies = [json.dumps(WEB_CLIENT).encode(), b"{", b"[]", json.dumps(MCP_CLIENT).encode()]
    await asyncio.gather(
        *(
            post(
                gateway.url + "/reg",
                data=b,
                headers={"Content-Type": "application/json", "X-Request-ID": f"r{i}"},
            )
            for i, b in enumerate(bodies)
        )
    )
    ids = sorted(e["client_request_id"] for e in gateway.registrations())
    assert ids == ["r0", "r1", "r2", "r3"]
    assert len({e["request_id"] for e in gateway.registrations()}) == 4


async def test_cors_preflight_is_answered_by_the_gateway_unaudited(upstream, gateway_factory):
    """The upstream's own (permissive) CORS must not decide who may register from a page:
    without cors.allow_origins the gateway answers the preflight with no CORS headers."""
    gateway = await gateway_factory(upstream.url)
    preflight = {
        "Origin": "http://localhost:6274",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with aiohttp.ClientSession() as session:
        async with session.options(gateway.url + "/reg", headers=preflight) as response:
            assert response.status == 204
            assert "Access-Control-Allow-Origin" not in response.headers
            assert response.headers["Server"] == "dcr-gateway"
    assert gateway.registrations() == []
