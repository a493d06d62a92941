"""Spellings of the guarded paths and method overrides, against node-oidc-provider.

node-oidc-provider's router folds letter case, ignores one trailing slash and a fragment,
and percent-decodes the client id (so ``/reg/<id>;x``, ``/reg/<id>%2F`` or ``/reg/<id>\\``
reach its management handler too, for another client id); the gateway's canonical form
(:mod:`gateway.uri.paths`) must be at least as forgiving, or an update spelled
``/REG/<id>`` would reach the upstream unjudged.  Every request here goes out raw (an HTTP
client would normalise the target), through a :class:`RecordingProxy` that tells what
reached the upstream; each client is read back directly from the upstream with its
registration access token to prove it did not change.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.support.e2e import EVIL_CB, events_for, request
from tests.support.rawhttp import Reply, assert_gateway_error, raw_request

pytestmark = pytest.mark.integration

POLICY = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "all", "allow": ["https://app.example.com/*"]},
}
WEB = {
    "client_name": "Good Web App",
    "redirect_uris": ["https://app.example.com/cb"],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "scope": "openid",
}
NOT_IN_UPDATES = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)
OVERRIDE_HEADERS = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


def _encode_all(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


#: name -> target template; ``{id}`` is the client id, ``{enc}`` it fully percent-encoded,
#: ``{enc1}`` with only its first character encoded, ``{enc2}`` that one double-encoded.
MANAGEMENT_SPELLINGS = {
    "plain": "/reg/{id}",
    "trailing-slash": "/reg/{id}/",
    "double-slashes": "//reg//{id}",
    "dot-dot": "/x/../reg/{id}",
    "encoded-r": "/%72eg/{id}",
    "upper": "/REG/{id}",
    "mixed-case": "/rEg/{id}",
    "param-on-id": "/reg/{id};x",
    "param-on-reg": "/reg;x/{id}",
    "dot-segment": "/reg/./{id}",
    "leading-dot": "/./reg/{id}",
    "trailing-dot": "/reg/{id}/.",
    "encoded-dot": "/reg/%2e/{id}",
    "encoded-slash-after": "/reg/{id}%2F",
    "encoded-slash-between": "/reg%2F{id}",
    "backslash": "/reg\\{id}",
    "backslash-after": "/reg/{id}\\",
    "fragment": "/reg/{id}#x",
    "query": "/reg/{id}?x=1",
    "encoded-id": "/reg/{enc}",
    "encoded-first": "/reg/{enc1}",
    "double-encoded-first": "/reg/{enc2}",
    "absolute-form": "http://gateway.test/reg/{id}",
    "absolute-form-upper": "http://gateway.test/REG/{id}/",
}
#: Spellings node-oidc-provider itself routes to the same client's configuration endpoint
#: (``param-on-id``, ``encoded-slash-after`` and ``backslash-after`` reach it for another
#: client id, ``<id>;x``, ``<id>/``, ``<id>\\``).
ROUTED_BY_NODE = ("trailing-slash", "upper", "mixed-case", "encoded-id", "fragment", "query")

REGISTRATION_SPELLINGS = (
    "/reg/",
    "//reg",
    "/%72eg",
    "/REG",
    "/Reg",
    "/x/../reg",
    "/reg;x",
    "/reg/.",
    "/./reg",
    "/reg//",
    "/reg\\",
    "/%2e/reg",
    "/reg%2F",
    "/reg%3Bx",
    "/reg?x=1",
    "/reg#/x",
    "/%252e/reg",
    "http://gateway.test/reg",
    "http://gateway.test//REG/",
)


@pytest.fixture
async def gateway(proxy, gateway_factory):
    return await gateway_factory(proxy.url, policy=POLICY)


def target_for(template: str, client_id: str) -> str:
    first = f"%{ord(client_id[0]):02X}"
    return template.format(
        id=client_id,
        enc=_encode_all(client_id),
        enc1=first + client_id[1:],
        enc2=first.replace("%", "%25") + client_id[1:],
    )


async def new_client(session: aiohttp.ClientSession, gateway: Any) -> dict[str, Any]:
    answer = await request(session, "POST", gateway.url + "/reg", json_body=WEB)
    assert answer.status == 201, answer
    return answer.json()


def bearer(client: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {client['registration_access_token']}"}


def update_of(client: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in client.items() if k not in NOT_IN_UPDATES}
    body.update(changes)
    return body


def evil_update(client: dict[str, Any]) -> dict[str, Any]:
    return update_of(client, client_name="claudeai", redirect_uris=[*WEB["redirect_uris"], EVIL_CB])


async def upstream_copy(
    session: aiohttp.ClientSession, upstream: Any, client: dict[str, Any]
) -> dict[str, Any]:
    """The client as the upstream has it now, read directly with its token."""
    answer = await request(
        session, "GET", f"{upstream.url}/reg/{client['client_id']}", headers=bearer(client)
    )
    assert answer.status == 200, ("the upstream no longer reads the client", answer)
    return answer.json()


def the_event(gateway: Any, reply: Reply) -> dict[str, Any]:
    (event,) = events_for(gateway, reply.header("X-Request-ID") or "")
    return event


# ---------------------------------------------------------------- management spellings


@pytest.mark.parametrize("name", list(MANAGEMENT_SPELLINGS))
async def test_an_evil_update_however_spelled_is_judged_and_never_reaches_the_upstream(
    upstream, proxy, gateway, session, name
):
    client = await new_client(session, gateway)
    before = await upstream_copy(session, upstream, client)
    target = target_for(MANAGEMENT_SPELLINGS[name], client["client_id"])
    since = proxy.mark()
    reply = await raw_request(
        gateway, "PUT", target, body=evil_update(client), headers=bearer(client)
    )

    assert_gateway_error(reply, 400)
    assert proxy.requests(since) == [], target
    event = the_event(gateway, reply)
    assert (event["event"], event["decision"], event["rule"]) == (
        "client.updated",
        "denied",
        "redirect_uri.not_allowed",
    ), event
    assert event["client_id"] == client["client_id"]
    assert event["upstream_status"] is None
    assert await upstream_copy(session, upstream, client) == before


@pytest.mark.parametrize("name", ["upper", "trailing-slash", "encoded-id"])
async def test_control_the_upstream_itself_takes_an_evil_update_so_spelled(
    upstream, gateway, session, name
):
    """Without the gateway, these spellings reach node-oidc-provider's update handler."""
    client = await new_client(session, gateway)
    target = target_for(MANAGEMENT_SPELLINGS[name], client["client_id"])
    reply = await raw_request(
        SimpleNamespace(url=upstream.url),
        "PUT",
        target,
        body=evil_update(client),
        headers=bearer(client),
    )
    assert reply.status == 200, reply
    assert reply.json()["redirect_uris"] == [*WEB["redirect_uris"], EVIL_CB]


@pytest.mark.parametrize("name", ROUTED_BY_NODE)
async def test_a_good_update_however_spelled_is_forwarded_in_normal_form(
    upstream, proxy, gateway, session, name
):
    client = await new_client(session, gateway)
    client_id = client["client_id"]
    target = target_for(MANAGEMENT_SPELLINGS[name], client_id)
    since = proxy.mark()
    reply = await raw_request(
        gateway,
        "PUT",
        target,
        body=update_of(client, client_name="Good Web App 2"),
        headers=bearer(client),
    )
    assert reply.status == 200, reply
    assert proxy.requests(since) == [f"PUT /reg/{client_id}"]
    updated = reply.json()
    assert updated["client_name"] == "Good Web App 2"
    assert updated["registration_client_uri"] == f"{gateway.url}/reg/{client_id}"
    assert (await upstream_copy(session, upstream, updated))["client_name"] == "Good Web App 2"
    event = the_event(gateway, reply)
    assert (event["event"], event["decision"]) == ("client.updated", "allowed")
    assert event["changes"] == {"client_name": {"from": "Good Web App", "to": "Good Web App 2"}}


@pytest.mark.parametrize("name", ["upper", "encoded-id", "param-on-id", "backslash"])
async def test_reads_and_deletes_however_spelled_go_to_the_normal_form(
    upstream, proxy, gateway, session, name
):
    client = await new_client(session, gateway)
    client_id = client["client_id"]
    target = target_for(MANAGEMENT_SPELLINGS[name], client_id)
    since = proxy.mark()
    read = await raw_request(gateway, "GET", target, headers=bearer(client))
    assert read.status == 200, read
    deleted = await raw_request(gateway, "DELETE", target, headers=bearer(client))
    assert deleted.status == 204, deleted
    assert proxy.requests(since) == [f"GET /reg/{client_id}", f"DELETE /reg/{client_id}"]
    assert client_id not in upstream.client_ids()


# ---------------------------------------------------------------- method overrides


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
async def test_a_post_overridden_to_put_is_refused_and_not_forwarded(
    upstream, proxy, gateway, session, header
):
    client = await new_client(session, gateway)
    before = await upstream_copy(session, upstream, client)
    since = proxy.mark()
    reply = await raw_request(
        gateway,
        "POST",
        f"/reg/{client['client_id']}",
        body=evil_update(client),
        headers={**bearer(client), header: "PUT"},
    )
    assert_gateway_error(reply, 405)
    assert reply.header("Allow") == "GET, PUT, DELETE, OPTIONS"
    assert proxy.requests(since) == []
    event = the_event(gateway, reply)
    assert (event["event"], event["decision"], event["rule"]) == (
        "client.management",
        "denied",
        "request.method",
    )
    assert await upstream_copy(session, upstream, client) == before


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
async def test_a_get_overridden_to_put_stays_a_bodiless_get_upstream(
    upstream, proxy, gateway, session, header
):
    client = await new_client(session, gateway)
    before = await upstream_copy(session, upstream, client)
    since = proxy.mark()
    reply = await raw_request(
        gateway,
        "GET",
        f"/reg/{client['client_id']}",
        body=evil_update(client),
        headers={**bearer(client), header: "PUT"},
    )
    assert reply.status == 200, reply
    assert proxy.requests(since) == [f"GET /reg/{client['client_id']}"]
    assert not proxy.saw(header.encode() + b":", since)
    assert not proxy.saw(EVIL_CB.encode(), since)
    assert await upstream_copy(session, upstream, client) == before


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
async def test_a_put_overridden_to_delete_is_judged_as_a_put(
    upstream, proxy, gateway, session, header
):
    client = await new_client(session, gateway)
    client_id = client["client_id"]
    before = await upstream_copy(session, upstream, client)
    since = proxy.mark()
    evil = await raw_request(
        gateway,
        "PUT",
        f"/reg/{client_id}",
        body=evil_update(client),
        headers={**bearer(client), header: "DELETE"},
    )
    assert_gateway_error(evil, 400)
    assert the_event(gateway, evil)["rule"] == "redirect_uri.not_allowed"
    assert proxy.requests(since) == []
    assert await upstream_copy(session, upstream, client) == before

    good = await raw_request(
        gateway,
        "PUT",
        f"/reg/{client_id}",
        body=update_of(client, client_name="Still Here"),
        headers={**bearer(client), header: "DELETE"},
    )
    assert good.status == 200, good
    assert proxy.requests(since) == [f"PUT /reg/{client_id}"]
    assert not proxy.saw(header.encode() + b":", since)
    assert client_id in upstream.client_ids()


# ---------------------------------------------------------------- other methods, deeper paths


@pytest.mark.parametrize(
    ("method", "suffix", "status", "rule"),
    [
        ("POST", "", 405, "request.method"),
        ("PATCH", "", 405, "request.method"),
        ("HEAD", "", 405, "request.method"),
        ("PROPPATCH", "", 405, "request.method"),
        ("GET", "/extra", 404, "management.not_a_client"),
        ("PUT", "/extra", 404, "management.not_a_client"),
        ("DELETE", "/extra", 404, "management.not_a_client"),
        ("PUT", "%2Fextra", 404, "management.not_a_client"),
        ("PUT", "/a/b", 404, "management.not_a_client"),
    ],
)
async def test_other_methods_and_deeper_paths_are_refused_and_never_forwarded(
    upstream, proxy, gateway, session, method, suffix, status, rule
):
    client = await new_client(session, gateway)
    before = await upstream_copy(session, upstream, client)
    since = proxy.mark()
    reply = await raw_request(
        gateway,
        method,
        f"/reg/{client['client_id']}{suffix}",
        body=evil_update(client),
        headers=bearer(client),
    )
    assert reply.status == status, reply
    if method != "HEAD":
        answer = assert_gateway_error(reply, status)
        assert answer["error_description"].endswith(f"(rule {rule})"), answer
    assert proxy.requests(since) == []
    assert the_event(gateway, reply)["rule"] == rule
    assert await upstream_copy(session, upstream, client) == before


# ---------------------------------------------------------------- registration spellings


@pytest.mark.parametrize("target", REGISTRATION_SPELLINGS)
async def test_an_evil_registration_however_spelled_is_judged(upstream, proxy, gateway, target):
    body = {**WEB, "redirect_uris": [EVIL_CB]}
    count = await upstream.aclient_count()
    since = proxy.mark()
    reply = await raw_request(gateway, "POST", target, body=body)
    assert_gateway_error(reply, 400)
    event = the_event(gateway, reply)
    assert (event["event"], event["decision"], event["rule"]) == (
        "registration",
        "denied",
        "redirect_uri.not_allowed",
    ), event
    assert proxy.requests(since) == []
    assert await upstream.aclient_count() == count


@pytest.mark.parametrize("target", ["/REG", "/reg/", "/x/../reg", "/reg;x"])
async def test_a_good_registration_however_spelled_is_forwarded_in_normal_form(
    upstream, proxy, gateway, target
):
    count = await upstream.aclient_count()
    since = proxy.mark()
    reply = await raw_request(gateway, "POST", target, body=WEB)
    assert reply.status == 201, reply
    assert proxy.requests(since) == ["POST /reg"]
    assert await upstream.aclient_count() == count + 1


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PUT", {"X-HTTP-Method-Override": "POST"}),
        ("GET", {"X-HTTP-Method": "POST"}),
        ("PATCH", {"X-Method-Override": "POST"}),
        ("DELETE", {"X-HTTP-Method-Override": "POST"}),
    ],
)
async def test_registration_with_another_method_is_refused_whatever_the_override(
    upstream, proxy, gateway, method, headers
):
    count = await upstream.aclient_count()
    since = proxy.mark()
    reply = await raw_request(gateway, method, "/reg", body=WEB, headers=headers)
    assert_gateway_error(reply, 405)
    assert reply.header("Allow") == "POST, OPTIONS"
    assert the_event(gateway, reply)["rule"] == "request.method"
    assert proxy.requests(since) == []
    assert await upstream.aclient_count() == count


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
async def test_an_override_header_on_a_registration_never_reaches_the_upstream(
    upstream, proxy, gateway, header
):
    since = proxy.mark()
    reply = await raw_request(gateway, "POST", "/reg", body=WEB, headers={header: "PUT"})
    assert reply.status == 201, reply
    assert proxy.requests(since) == ["POST /reg"]
    assert not proxy.saw(header.encode() + b":", since)
