"""The whole RFC 7592 cycle through the gateway, against node-oidc-provider.

node-oidc-provider runs with ``rotateRegistrationAccessToken: true``: every successful
update answers a new registration access token and discards the old one.  An update is a
registration in disguise (RFC 7592 §2.2: the body is the whole client), so the gateway
judges it with the same policy; a refused one must leave the upstream's client exactly as
it was, which the tests check by reading it back, directly from the upstream too.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import pytest

from gateway.audit.logging import configure_logging
from tests.support.e2e import EVIL_CB, Answer, assert_wire_refusal, request
from tests.support.gzip_proxy import CompressingProxy

pytestmark = pytest.mark.integration

POLICY = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "all", "allow": ["https://app.example.com/*"]},
}
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
DISABLED = {"version": 1, "mode": "disabled"}

PUBLIC = {
    "client_name": "Loopback Agent",
    "redirect_uris": ["http://127.0.0.1:43210/callback"],
    "token_endpoint_auth_method": "none",
    "application_type": "native",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "scope": "openid offline_access",
}
CONFIDENTIAL = {
    "client_name": "Good Web App",
    "redirect_uris": ["https://app.example.com/cb"],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
    "scope": "openid",
    "client_uri": "https://app.example.com/",
}
#: What RFC 7592 §2.2 forbids in an update body (node-oidc-provider refuses them).
NOT_IN_UPDATES = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def update_of(current: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An update body from a client's current configuration; ``None`` removes a field."""
    body = {k: v for k, v in current.items() if k not in NOT_IN_UPDATES}
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def configuration(client: dict[str, Any]) -> dict[str, Any]:
    """A client's metadata without its registration access token (new on every update)."""
    return {k: v for k, v in client.items() if k != "registration_access_token"}


async def register(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict:
    answer = await request(session, "POST", url + "/reg", json_body=body)
    assert answer.status == 201, answer
    assert "Location" not in answer.headers or answer.headers["Location"].startswith(url)
    return answer.json()


async def read_direct(
    session: aiohttp.ClientSession, upstream_url: str, client_id: str, token: str
) -> Answer:
    """The client as the upstream has it, bypassing the gateway."""
    return await request(session, "GET", f"{upstream_url}/reg/{client_id}", headers=bearer(token))


def events(gateway: Any, client_id: str) -> list[dict[str, Any]]:
    return [e for e in gateway.events() if e.get("client_id") == client_id]


#: An ``Authorization`` header or field in a log line, or a bearer credential.
AUTHORIZATION = re.compile(r"authorization\"?\s*[:=]|bearer\s", re.IGNORECASE)


def assert_no_secrets(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret, "empty secret"
        for index, text in enumerate(texts):
            assert secret not in text, (index, secret)
    for index, text in enumerate(texts):
        found = AUTHORIZATION.search(text)
        assert found is None, (index, text[max(0, found.start() - 200) : found.end() + 200])


@pytest.fixture
def capture_logs(capsys, caplog):
    """The operational log at debug level (it is JSON lines on stderr) and aiohttp's own
    loggers, for the secret checks."""
    caplog.set_level(logging.DEBUG)

    def start() -> None:
        configure_logging("debug")  # after the gateway's build() chose "warning"
        capsys.readouterr()
        caplog.clear()

    def read() -> list[str]:
        captured = capsys.readouterr()
        return [captured.out, captured.err, caplog.text]

    yield start, read
    configure_logging("warning")


# ---------------------------------------------------------------- the cycle


@pytest.mark.parametrize("kind", ["public", "confidential"])
async def test_register_read_update_rotate_delete(
    upstream, gateway_factory, session, capture_logs, kind
):
    start_logs, read_logs = capture_logs
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    start_logs()
    body = PUBLIC if kind == "public" else CONFIDENTIAL
    client = await register(session, gateway.url, body)
    client_id = client["client_id"]
    uri = client["registration_client_uri"]
    assert uri == f"{gateway.url}/reg/{client_id}"
    if kind == "public":
        assert "client_secret" not in client
        assert client["token_endpoint_auth_method"] == "none"
        assert client["application_type"] == "native"
    else:
        assert client["client_secret"]
    first_token = client["registration_access_token"]

    read = await request(session, "GET", uri, headers=bearer(first_token))
    assert read.status == 200, read
    current = read.json()
    assert current["registration_client_uri"] == uri
    assert configuration(current) == configuration(client)

    if kind == "public":
        changed = {
            "client_name": "Loopback Agent 2",
            "redirect_uris": [*PUBLIC["redirect_uris"], "http://127.0.0.1:50001/callback"],
        }
    else:
        changed = {
            "scope": "openid email",
            "redirect_uris": [*CONFIDENTIAL["redirect_uris"], "https://app.example.com/cb2"],
            "client_uri": None,  # removed
            "client_secret": client["client_secret"],  # RFC 7592 §2.2: may be sent back
        }
    put = await request(
        session, "PUT", uri, json_body=update_of(current, **changed), headers=bearer(first_token)
    )
    assert put.status == 200, put
    assert "Location" not in put.headers or put.headers["Location"].startswith(gateway.url)
    updated = put.json()
    second_token = updated["registration_access_token"]
    assert second_token != first_token
    assert updated["registration_client_uri"] == uri
    for key, value in changed.items():
        if key != "client_secret":
            assert updated.get(key) == value, key

    # The old token is gone, the new one works, through the gateway and directly.
    stale = await request(session, "GET", uri, headers=bearer(first_token))
    assert stale.status == 401, stale
    fresh = await request(session, "GET", uri, headers=bearer(second_token))
    assert fresh.status == 200, fresh
    assert configuration(fresh.json()) == configuration(updated)
    direct = await read_direct(session, upstream.url, client_id, second_token)
    assert direct.status == 200
    assert direct.json()["redirect_uris"] == updated["redirect_uris"]

    deleted = await request(session, "DELETE", uri, headers=bearer(second_token))
    assert deleted.status == 204, deleted
    assert client_id not in upstream.client_ids()
    gone = await request(session, "GET", uri, headers=bearer(second_token))
    assert gone.status == 401, gone

    trail = events(gateway, client_id)
    assert [(e["event"], e["status"]) for e in trail] == [
        ("registration", 201),
        ("client.read", 200),
        ("client.updated", 200),
        ("client.read", 401),
        ("client.read", 200),
        ("client.deleted", 204),
        ("client.read", 401),
    ]
    update_event = trail[2]
    assert update_event["decision"] == "allowed"
    expected = {
        key: {"from": client.get(key), "to": updated.get(key)}
        for key in changed
        if key != "client_secret"
    }
    assert update_event["changes"] == expected
    assert all(e["rule"] == "allow.management" for e in trail[1:] if e["event"] != "client.updated")

    secrets = [first_token, second_token]
    if kind == "confidential":
        secrets.append(client["client_secret"])
    logs = read_logs()
    assert f"PUT /reg/{client_id}" in logs[2]  # the capture works: aiohttp's access log
    assert_no_secrets([gateway.audit_text(), *logs], secrets)


async def test_an_unchanged_update_lists_no_changes_and_still_rotates(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await register(session, gateway.url, CONFIDENTIAL)
    uri, token = client["registration_client_uri"], client["registration_access_token"]
    put = await request(session, "PUT", uri, json_body=update_of(client), headers=bearer(token))
    assert put.status == 200, put
    assert put.json()["registration_access_token"] != token
    (update_event,) = [e for e in gateway.events() if e["event"] == "client.updated"]
    assert update_event["changes"] == {}


# ---------------------------------------------------------------- refused updates


EVIL_UPDATES = {
    "rename-claudeai": (
        {"client_name": "claudeai"},
        400,
        "invalid_client_metadata",
        "client_name.impersonation",
    ),
    "evil-redirect": (
        {"redirect_uris": [*CONFIDENTIAL["redirect_uris"], EVIL_CB]},
        400,
        "invalid_redirect_uri",
        "redirect_uri.not_allowed",
    ),
    "jwks-uri-ip": (
        {"jwks_uri": "https://127.0.0.1/x"},
        400,
        "invalid_client_metadata",
        "metadata_url.ip_address",
    ),
    "software-statement": (
        {"software_statement": "eyJhbGciOiJub25lIn0.eyJjbGllbnRfbmFtZSI6ImNsYXVkZWFpIn0."},
        400,
        "unapproved_software_statement",
        "software_statement.not_accepted",
    ),
}


@pytest.mark.parametrize("case", list(EVIL_UPDATES))
async def test_a_refused_update_leaves_the_upstream_client_unchanged(
    upstream, gateway_factory, session, case
):
    changes, status, error, rule = EVIL_UPDATES[case]
    gateway = await gateway_factory(upstream.url, policy=POLICY)
    client = await register(session, gateway.url, CONFIDENTIAL)
    uri, token = client["registration_client_uri"], client["registration_access_token"]
    before = await read_direct(session, upstream.url, client["client_id"], token)
    assert before.status == 200

    put = await request(
        session, "PUT", uri, json_body=update_of(client, **changes), headers=bearer(token)
    )
    assert_wire_refusal(put, status, error, rule)

    # The token was never used upstream: it still reads the client, which is unchanged.
    after = await read_direct(session, upstream.url, client["client_id"], token)
    assert after.status == 200, after
    assert after.json() == before.json()
    through = await request(session, "GET", uri, headers=bearer(token))
    assert configuration(through.json()) == configuration(client)

    (refused,) = [e for e in gateway.events() if e["event"] == "client.updated"]
    assert (refused["decision"], refused["rule"], refused["status"]) == ("denied", rule, status)
    assert refused["upstream_status"] is None
    assert refused["client_id"] == client["client_id"]
    assert_no_secrets([gateway.audit_text()], [token, client["client_secret"]])


async def test_with_registration_disabled_reads_and_deletes_work_updates_do_not(
    upstream, gateway_factory, session
):
    opened = await gateway_factory(upstream.url, policy=OPEN)
    client = await register(session, opened.url, CONFIDENTIAL)
    client_id, token = client["client_id"], client["registration_access_token"]
    gateway = await gateway_factory(upstream.url, policy=DISABLED)
    uri = f"{gateway.url}/reg/{client_id}"

    read = await request(session, "GET", uri, headers=bearer(token))
    assert read.status == 200, read
    assert read.json()["registration_client_uri"] == uri
    put = await request(
        session,
        "PUT",
        uri,
        json_body=update_of(read.json(), client_name="Renamed"),
        headers=bearer(token),
    )
    assert_wire_refusal(put, 403, "access_denied", "mode.disabled")
    after = await read_direct(session, upstream.url, client_id, token)
    assert after.json()["client_name"] == CONFIDENTIAL["client_name"]
    deleted = await request(session, "DELETE", uri, headers=bearer(token))
    assert deleted.status == 204, deleted
    assert client_id not in upstream.client_ids()

    trail = events(gateway, client_id)
    assert [(e["event"], e["decision"], e["rule"]) for e in trail] == [
        ("client.read", "allowed", "allow.management"),
        ("client.updated", "denied", "mode.disabled"),
        ("client.deleted", "allowed", "allow.management"),
    ]
    assert_no_secrets([gateway.audit_text()], [token, client["client_secret"]])


# ---------------------------------------------------------------- X-Forwarded-* ignored


@pytest.mark.parametrize("public_url", [None, "https://dcr.example.test:8443"])
async def test_an_upstream_ignoring_forwarding_headers_still_points_clients_at_the_gateway(
    upstream_factory, gateway_factory, session, public_url
):
    server = upstream_factory(trust_proxy=False)
    # Control: the upstream really builds its URLs from its own address.
    direct = await request(
        session,
        "POST",
        server.url + "/reg",
        json_body=CONFIDENTIAL,
        headers={"X-Forwarded-Host": "gateway.example.test", "X-Forwarded-Proto": "https"},
    )
    assert direct.status == 201, direct
    assert direct.json()["registration_client_uri"].startswith(server.url + "/reg/")

    gateway = await gateway_factory(server.url, policy=POLICY, public_url=public_url)
    public = public_url or gateway.url
    client = await register(session, gateway.url, CONFIDENTIAL)
    client_id = client["client_id"]
    assert client["registration_client_uri"] == f"{public}/reg/{client_id}"

    uri = f"{gateway.url}/reg/{client_id}"
    token = client["registration_access_token"]
    read = await request(session, "GET", uri, headers=bearer(token))
    assert read.status == 200, read
    assert read.json()["registration_client_uri"] == f"{public}/reg/{client_id}"
    assert "Location" not in read.headers or read.headers["Location"].startswith(public)
    put = await request(
        session,
        "PUT",
        uri,
        json_body=update_of(read.json(), client_name="Good Web App 2"),
        headers=bearer(token),
    )
    assert put.status == 200, put
    assert put.json()["registration_client_uri"] == f"{public}/reg/{client_id}"
    assert "Location" not in put.headers or put.headers["Location"].startswith(public)
    deleted = await request(
        session, "DELETE", uri, headers=bearer(put.json()["registration_access_token"])
    )
    assert deleted.status == 204


@pytest.mark.parametrize("always", [False, True], ids=["honours-identity", "always-gzip"])
async def test_a_compressing_upstream_still_points_clients_at_the_gateway(
    upstream_factory, gateway_factory, session, always
):
    """node behind nginx ``gzip on``, answering the client's ``Accept-Encoding: gzip``: the
    registration answer must still name the gateway's ``registration_client_uri`` (else
    every later update goes straight to the upstream, unjudged) and its audit event the
    new ``client_id``.  The gateway asks for ``identity`` and decodes what a misbehaving
    upstream compresses anyway."""
    server = upstream_factory(trust_proxy=False)
    relay = await CompressingProxy(server.url, always=always).start()
    try:
        gateway = await gateway_factory(relay.url, policy=POLICY)
        gzip = {"Accept-Encoding": "gzip, deflate"}
        answer = await request(
            session, "POST", gateway.url + "/reg", json_body=CONFIDENTIAL, headers=gzip
        )
        assert answer.status == 201, answer
        client = answer.json()
        assert relay.accept_encodings == ["identity", "identity"]  # start-up, then /reg
        assert relay.compressed == (2 if always else 0)
        assert "Content-Encoding" not in answer.headers
        client_id = client["client_id"]
        (event,) = gateway.registrations()
        assert (client["registration_client_uri"], event["client_id"]) == (
            f"{gateway.url}/reg/{client_id}",
            client_id,
        )
    finally:
        await relay.close()
