"""SSRF through the authorization server, end to end.

node-oidc-provider fetches ``sector_identifier_uri`` while it registers a client (and
``jwks_uri``, ``request_uris``, ``backchannel_logout_uri`` later), so a registration that
names an internal address makes the authorization server connect there.  A local TCP
listener records every connection: the control test shows the upstream does connect when
asked directly; through the gateway, no notation of that address gets a client created or
a connection made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.e2e import (
    EVIL_CB,
    ConnectionRecorder,
    assert_wire_refusal,
    events_for,
    register,
    request,
)

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open"}
FIELDS = ("jwks_uri", "sector_identifier_uri", "request_uris", "logo_uri", "backchannel_logout_uri")

#: (id, URL with ``{port}`` for the listener's port, expected rule)
NOTATIONS = [
    ("dotted-quad", "https://127.0.0.1:{port}/x", "metadata_url.ip_address"),
    ("decimal", "https://2130706433:{port}/", "metadata_url.ip_address"),
    ("hex-short", "https://0x7f.1:{port}/", "metadata_url.ip_address"),
    ("short", "https://127.1:{port}/", "metadata_url.ip_address"),
    ("octal", "https://0177.0.0.1:{port}/", "metadata_url.ip_address"),
    ("ideographic-dots", "https://127\u30020\u30020\u30021:{port}/", "metadata_url.ip_address"),
    ("v4-mapped", "https://[::ffff:127.0.0.1]:{port}/", "metadata_url.ip_address"),
    ("v6-loopback", "https://[::1]:{port}/", "metadata_url.ip_address"),
    ("v6-long", "https://[0:0:0:0:0:0:0:1]:{port}/", "metadata_url.ip_address"),
    ("localhost", "https://localhost:{port}/", "metadata_url.internal_host"),
    ("localhost-upper-dot", "https://LOCALHOST.:{port}/", "metadata_url.internal_host"),
    (
        "localhost-fullwidth",
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{port}/",
        "metadata_url.internal_host",
    ),
    ("sub-localhost", "https://a.localhost:{port}/", "metadata_url.internal_host"),
    ("empty-label", "https://a..b/x", "metadata_url.malformed"),
    ("unclosed-bracket", "https://[::1", "metadata_url.malformed"),
    ("single-label", "https://vault:{port}/", "metadata_url.internal_host"),
    ("dot-local", "https://printer.local:{port}/", "metadata_url.internal_host"),
    ("dot-internal", "https://metadata.internal:{port}/", "metadata_url.internal_host"),
    ("k8s-service", "https://kubernetes.default.svc:{port}/", "metadata_url.internal_host"),
    ("k8s-short", "https://kubernetes.default:{port}/", "metadata_url.internal_host"),
    ("plain-http", "http://keys.example.com:{port}/", "metadata_url.not_https"),
]


@pytest.fixture
async def recorder() -> AsyncIterator[ConnectionRecorder]:
    listener = await ConnectionRecorder().start()
    try:
        yield listener
    finally:
        await listener.stop()


def body_with(field: str, url: str) -> dict:
    value = [url] if field == "request_uris" else url
    return {"client_name": "Fetch Me", "redirect_uris": [EVIL_CB], field: value}


async def test_upstream_connects_when_asked_directly(upstream, recorder, session):
    """The control: without the gateway, one registration makes the upstream connect."""
    url = f"https://127.0.0.1:{recorder.port}/sector"
    answer = await request(
        session, "POST", upstream.url + "/reg", json_body=body_with("sector_identifier_uri", url)
    )
    assert answer.status == 400, answer  # it could not load the document...
    for _ in range(50):
        if recorder.connections:
            break
        await asyncio.sleep(0.02)
    assert len(recorder.connections) == 1  # ...because it tried to fetch it from us
    assert recorder.connections[0][1].startswith(b"\x16\x03")  # a TLS ClientHello


async def test_no_notation_of_an_internal_address_reaches_the_upstream(
    upstream, gateway_factory, recorder, session
):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = await upstream.aclient_count(session)
    wrong: list[str] = []
    sent = 0
    for field in FIELDS:
        for case_id, template, rule in NOTATIONS:
            url = template.format(port=recorder.port)
            answer = await register(session, gateway, body_with(field, url))
            sent += 1
            label = f"{field}={url!r} ({case_id})"
            try:
                assert_wire_refusal(answer, 400, "invalid_client_metadata", rule)
            except AssertionError as exc:
                wrong.append(f"{label}: expected {rule}, got {answer!r} [{exc}]")
                continue
            events = events_for(gateway, answer.headers["X-Request-ID"])
            if [(e["decision"], e["rule"]) for e in events] != [("denied", rule)]:
                wrong.append(f"{label}: audit events {events}")
    # Language-tagged variants are URLs browsers fetch too.
    answer = await register(
        session,
        gateway,
        {"redirect_uris": [EVIL_CB], "logo_uri#ja": f"https://127.0.0.1:{recorder.port}/ja.png"},
    )
    sent += 1
    assert_wire_refusal(answer, 400, "invalid_client_metadata", "metadata_url.ip_address")

    await asyncio.sleep(1.0)  # time for any fetch the upstream might have started
    assert wrong == []
    assert recorder.connections == []
    assert await upstream.aclient_count(session) == before
    assert len(gateway.registrations()) == sent


async def test_the_same_fields_on_a_public_host_are_created(upstream, gateway_factory, session):
    """The control: the refusals above are about the address, not the fields."""
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = await upstream.aclient_count(session)
    answer = await register(
        session,
        gateway,
        {
            "client_name": "Fetch Me",
            "redirect_uris": [EVIL_CB],
            "logo_uri": "https://cdn.example.com/logo.png",
            "client_uri": "https://www.example.com/",
        },
    )
    assert answer.status == 201, answer
    assert await upstream.aclient_count(session) == before + 1


FETCHED_HOSTS = {
    "version": 1,
    "mode": "open",
    "client": {"fetched_url_hosts": ["keys.example.com"]},
}


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("jwks_uri", "https://other.example.com/jwks"),
        ("jwks_uri", "https://keys.example.com.evil.com/jwks"),
        ("jwks_uri", "https://badkeys.example.com/jwks"),
        ("sector_identifier_uri", "https://other.example.com/sector"),
        ("request_uris", "https://other.example.com/request"),
        ("backchannel_logout_uri", "https://other.example.com/logout"),
    ],
)
async def test_fetched_url_outside_fetched_url_hosts_is_refused(
    upstream, gateway_factory, session, field, url
):
    gateway = await gateway_factory(upstream.url, policy=FETCHED_HOSTS)
    before = await upstream.aclient_count(session)
    answer = await register(session, gateway, body_with(field, url))
    assert_wire_refusal(answer, 400, "invalid_client_metadata", "metadata_url.host_not_allowed")
    assert await upstream.aclient_count(session) == before
    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("denied", "metadata_url.host_not_allowed")


async def test_browser_fetched_url_is_not_bound_by_fetched_url_hosts(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url, policy=FETCHED_HOSTS)
    before = await upstream.aclient_count(session)
    answer = await register(
        session, gateway, body_with("logo_uri", "https://other.example.com/logo.png")
    )
    assert answer.status == 201, answer
    assert await upstream.aclient_count(session) == before + 1
    [event] = gateway.registrations()
    assert event["rule"] == "allow.open"
