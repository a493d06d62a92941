"""CORS on the guarded paths, for browser-based clients (MCP Inspector), against
node-oidc-provider.

node-oidc-provider sends its own, permissive CORS headers on discovery (it echoes any
``Origin``, or ``*``) and on ``/token`` (``clientBasedCORS`` allows every origin here), none
on ``/reg``.  On the guarded paths (registration, management, discovery) the gateway
answers preflights itself, never forwarding them, and replaces whatever CORS headers the
upstream sent with its own decision: ``Access-Control-Allow-Origin`` for an origin listed
in ``cors.allow_origins`` and for nobody else.  Pass-through paths keep the upstream's own
behaviour.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.e2e import EVIL_CB, Answer, request

pytestmark = pytest.mark.integration

INSPECTOR = "http://localhost:6274"
STRANGER = "https://evil.example"
MAX_AGE = 600
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
POLICY = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "all", "allow": ["https://app.example.com/*"]},
}
WEB = {
    "client_name": "Browser App",
    "redirect_uris": ["https://app.example.com/cb"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "scope": "openid",
}
OIDC = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"
#: guarded path (``{id}`` a client id) -> what a preflight asks, what it is allowed
GUARDED = {
    "/reg": ("POST", "POST"),
    "/reg/{id}": ("PUT", "GET, PUT, DELETE"),
    OIDC: ("GET", "GET, HEAD"),
    RFC8414: ("GET", "GET, HEAD"),
}


@pytest.fixture
async def gateway(proxy, gateway_factory):
    return await gateway_factory(
        proxy.url, policy=POLICY, cors_origins=(INSPECTOR,), cors_max_age=MAX_AGE
    )


def cors_headers(answer: Answer) -> list[tuple[str, str]]:
    return [(k, v) for k, v in answer.all_headers if k.lower().startswith("access-control-")]


def vary(answer: Answer) -> set[str]:
    return {
        token.strip().lower()
        for name, value in answer.all_headers
        if name.lower() == "vary"
        for token in value.split(",")
    }


def preflight_headers(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def new_client(session: aiohttp.ClientSession, gateway: Any) -> dict[str, Any]:
    answer = await request(session, "POST", gateway.url + "/reg", json_body=WEB)
    assert answer.status == 201, answer
    return answer.json()


def assert_allowed_for(answer: Answer, origin: str) -> None:
    """The gateway's CORS decision for an allowed origin, exactly once, no credentials."""
    assert [v for k, v in cors_headers(answer) if k.lower() == "access-control-allow-origin"] == [
        origin
    ], answer.all_headers
    names = {k.lower() for k, _ in cors_headers(answer)}
    assert "access-control-allow-credentials" not in names, answer.all_headers
    assert "origin" in vary(answer), answer.all_headers


# ---------------------------------------------------------------- preflights


async def test_preflights_on_guarded_paths_are_answered_by_the_gateway(proxy, gateway, session):
    client = await new_client(session, gateway)
    since = proxy.mark()
    for template, (asked, allowed) in GUARDED.items():
        path = template.format(id=client["client_id"])
        answer = await request(
            session, "OPTIONS", gateway.url + path, headers=preflight_headers(INSPECTOR, asked)
        )
        assert answer.status == 204, (path, answer)
        assert answer.body == b""
        assert_allowed_for(answer, INSPECTOR)
        assert answer.headers["Access-Control-Allow-Methods"] == allowed, path
        assert answer.headers["Access-Control-Max-Age"] == str(MAX_AGE)
        allow_headers = {
            h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert {"authorization", "content-type"} <= allow_headers, path
        assert answer.headers["Server"] == "dcr-gateway"
    assert proxy.requests(since) == []


async def test_a_preflight_for_a_method_the_path_does_not_take_gets_no_cors(
    proxy, gateway, session
):
    client = await new_client(session, gateway)
    since = proxy.mark()
    for path, method in (
        ("/reg", "DELETE"),
        (f"/reg/{client['client_id']}", "POST"),
        (OIDC, "PUT"),
    ):
        answer = await request(
            session, "OPTIONS", gateway.url + path, headers=preflight_headers(INSPECTOR, method)
        )
        assert answer.status == 204, answer
        assert cors_headers(answer) == [], (path, answer.all_headers)
    assert proxy.requests(since) == []


async def test_a_preflight_from_another_origin_gets_no_cors(proxy, gateway, session):
    client = await new_client(session, gateway)
    since = proxy.mark()
    for template, (asked, _) in GUARDED.items():
        path = template.format(id=client["client_id"])
        answer = await request(
            session, "OPTIONS", gateway.url + path, headers=preflight_headers(STRANGER, asked)
        )
        assert answer.status == 204, answer
        assert cors_headers(answer) == [], (path, answer.all_headers)
    assert proxy.requests(since) == []


async def test_the_allow_header_of_a_preflight_below_a_client_has_no_empty_element(
    proxy, gateway, session
):
    """``/reg/<id>/extra`` is no endpoint (refused, never forwarded); its preflight names
    no method but OPTIONS, and RFC 9110 §5.6.1 forbids sending an empty list element."""
    client = await new_client(session, gateway)
    since = proxy.mark()
    answer = await request(
        session,
        "OPTIONS",
        f"{gateway.url}/reg/{client['client_id']}/extra",
        headers=preflight_headers(INSPECTOR, "GET"),
    )
    assert proxy.requests(since) == []
    assert cors_headers(answer) == [], answer.all_headers
    elements = [e.strip() for e in answer.headers.get("Allow", "OPTIONS").split(",")]
    assert "" not in elements, answer.headers.get("Allow")


# ---------------------------------------------------------------- actual answers


async def test_answers_to_an_allowed_origin_carry_its_cors_refusals_included(
    proxy, gateway, session
):
    client = await new_client(session, gateway)
    uri = f"{gateway.url}/reg/{client['client_id']}"
    token = {"Authorization": f"Bearer {client['registration_access_token']}"}
    origin = {"Origin": INSPECTOR}
    evil = {**WEB, "redirect_uris": [EVIL_CB]}
    update = {
        k: v
        for k, v in client.items()
        if k not in ("registration_access_token", "registration_client_uri", "client_id_issued_at")
    }
    cases = [
        ("POST", gateway.url + "/reg", WEB, {}, 201),
        ("POST", gateway.url + "/reg", evil, {}, 400),
        ("GET", gateway.url + "/reg", None, {}, 405),
        ("GET", uri, None, token, 200),
        ("PUT", uri, {**update, "redirect_uris": [EVIL_CB]}, token, 400),
        ("PATCH", uri, update, token, 405),
        ("GET", uri + "/extra", None, token, 404),
        ("GET", gateway.url + OIDC, None, {}, 200),
        ("GET", gateway.url + RFC8414, None, {}, 200),
        ("HEAD", gateway.url + OIDC, None, {}, 200),
    ]
    for method, url, body, headers, status in cases:
        answer = await request(session, method, url, json_body=body, headers={**origin, **headers})
        assert answer.status == status, (method, url, answer)
        assert_allowed_for(answer, INSPECTOR)
        exposed = {
            h.strip().lower() for h in answer.headers["Access-Control-Expose-Headers"].split(",")
        }
        assert {"location", "www-authenticate", "x-request-id"} <= exposed, (method, url)
    # The update was refused: the client was never sent upstream with an evil redirect.
    assert not proxy.saw(EVIL_CB.encode())


async def test_another_origin_gets_no_cors_and_the_upstreams_own_is_removed(
    upstream, gateway, session
):
    # Control: the upstream itself would let that origin read its discovery document.
    direct = await request(session, "GET", upstream.url + OIDC, headers={"Origin": STRANGER})
    assert ("Access-Control-Allow-Origin", STRANGER) in cors_headers(direct)

    client = await new_client(session, gateway)
    token = {"Authorization": f"Bearer {client['registration_access_token']}"}
    for method, path, body, headers in [
        ("GET", OIDC, None, {}),
        ("GET", RFC8414, None, {}),
        ("HEAD", OIDC, None, {}),
        ("POST", "/reg", WEB, {}),
        ("POST", "/reg", {**WEB, "redirect_uris": [EVIL_CB]}, {}),
        ("GET", f"/reg/{client['client_id']}", None, token),
        ("DELETE", f"/reg/{client['client_id']}/x", None, token),
    ]:
        answer = await request(
            session,
            method,
            gateway.url + path,
            json_body=body,
            headers={"Origin": STRANGER, **headers},
        )
        assert answer.status < 500, answer
        assert cors_headers(answer) == [], (method, path, answer.all_headers)
        assert "origin" in vary(answer), (method, path, answer.all_headers)


async def test_without_an_origin_the_upstreams_wildcard_is_removed(upstream, gateway, session):
    direct = await request(session, "GET", upstream.url + OIDC)
    assert ("Access-Control-Allow-Origin", "*") in cors_headers(direct)
    answer = await request(session, "GET", gateway.url + OIDC)
    assert answer.status == 200
    assert cors_headers(answer) == [], answer.all_headers


# ---------------------------------------------------------------- pass-through keeps the upstream's


async def test_pass_through_paths_keep_the_upstreams_cors(upstream, proxy, gateway, session):
    for origin in (INSPECTOR, STRANGER):
        since = proxy.mark()
        preflight = preflight_headers(origin, "POST")
        direct = await request(session, "OPTIONS", upstream.url + "/token", headers=preflight)
        relayed = await request(session, "OPTIONS", gateway.url + "/token", headers=preflight)
        assert relayed.status == direct.status == 204
        assert sorted(cors_headers(relayed)) == sorted(cors_headers(direct)), origin
        assert ("Access-Control-Allow-Origin", origin) in cors_headers(relayed)
        assert proxy.requests(since) == ["OPTIONS /token"]

        form = {"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"}
        data = b"grant_type=client_credentials&client_id=nobody"
        direct = await request(session, "POST", upstream.url + "/token", data=data, headers=form)
        relayed = await request(session, "POST", gateway.url + "/token", data=data, headers=form)
        assert relayed.status == direct.status == 401, relayed
        assert sorted(cors_headers(relayed)) == sorted(cors_headers(direct)), origin

        direct = await request(session, "GET", upstream.url + "/jwks", headers={"Origin": origin})
        relayed = await request(session, "GET", gateway.url + "/jwks", headers={"Origin": origin})
        assert relayed.status == direct.status == 200
        assert sorted(cors_headers(relayed)) == sorted(cors_headers(direct)), origin


# ---------------------------------------------------------------- no cors configured


async def test_without_cors_configured_guarded_paths_carry_no_cors_at_all(
    proxy, gateway_factory, session
):
    gateway = await gateway_factory(proxy.url, policy=OPEN)
    client = await new_client(session, gateway)
    since = proxy.mark()
    for template, (asked, _) in GUARDED.items():
        path = template.format(id=client["client_id"])
        answer = await request(
            session, "OPTIONS", gateway.url + path, headers=preflight_headers(INSPECTOR, asked)
        )
        assert answer.status == 204, answer
        assert cors_headers(answer) == [], (path, answer.all_headers)
    assert proxy.requests(since) == []
    token = {"Authorization": f"Bearer {client['registration_access_token']}"}
    for method, path, body, headers in [
        ("GET", OIDC, None, {}),
        ("GET", RFC8414, None, {}),
        ("POST", "/reg", WEB, {}),
        ("GET", "/reg", None, {}),
        ("GET", f"/reg/{client['client_id']}", None, token),
    ]:
        answer = await request(
            session,
            method,
            gateway.url + path,
            json_body=body,
            headers={"Origin": INSPECTOR, **headers},
        )
        assert cors_headers(answer) == [], (method, path, answer.all_headers)
