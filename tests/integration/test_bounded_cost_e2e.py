"""Bounded cost end to end: a body full of internationalized redirect URIs is refused
before any of them is parsed, its audit event stays small and says it was cut, and forty
such requests at once do not stall the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from unittest.mock import ANY

import aiohttp
import pytest

from tests.support.e2e import assert_wire_refusal, request

pytestmark = pytest.mark.integration

COUNT = 880
BODY_LIMIT = 65536  # the test gateway's limits.max_body_bytes
OPEN = {"version": 1, "mode": "open"}
DROP = {"version": 1, "mode": "open", "redirect_uris": {"on_mismatch": "drop"}}


def idn_uris(count: int = COUNT, total: int = 64_000) -> list[str]:
    """``count`` distinct internationalized redirect URIs whose JSON list is ~``total``
    bytes of UTF-8."""
    template = "https://\u043f\u0440\u0438\u043c\u0435\u0440-{i:03d}.\u0431\u00fccher.example/cb/"
    base = len(json.dumps([template.format(i=0)] * count, ensure_ascii=False).encode())
    pad = max(0, (total - base - 200) // count)
    return [template.format(i=i) + "p" * pad for i in range(count)]


def body_of(field: str = "redirect_uris") -> bytes:
    uris = idn_uris()
    redirect = uris if field == "redirect_uris" else ["https://app.example.com/cb"]
    metadata = {"client_name": "Cost", "redirect_uris": redirect}
    if field != "redirect_uris":
        metadata[field] = uris
    data = json.dumps(metadata, ensure_ascii=False).encode("utf-8")
    assert 60_000 < len(data) <= BODY_LIMIT, len(data)
    return data


HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


@pytest.mark.parametrize(
    ("policy", "field", "rule"),
    [
        (OPEN, "redirect_uris", "redirect_uri.too_many"),
        (DROP, "redirect_uris", "redirect_uri.too_many"),
        (OPEN, "post_logout_redirect_uris", "post_logout_redirect_uri.too_many"),
    ],
    ids=["reject", "drop", "post-logout"],
)
async def test_many_idn_redirect_uris_are_refused_quickly(
    upstream, gateway_factory, session, policy, field, rule
):
    gateway = await gateway_factory(upstream.url, policy=policy)
    body = body_of(field)
    before = await upstream.aclient_count(session)
    await request(session, "GET", gateway.url + "/-/healthz")  # a warm connection
    answer = await request(session, "POST", gateway.url + "/reg", data=body, headers=HEADERS)
    payload = assert_wire_refusal(answer, 400, "invalid_redirect_uri", rule)
    assert str(COUNT) in payload["error_description"]
    assert answer.elapsed < 0.2, f"{answer.elapsed * 1000:.0f} ms"
    assert await upstream.aclient_count(session) == before

    [event] = gateway.registrations()
    assert (event["decision"], event["rule"]) == ("denied", rule)
    sent = json.loads(body)
    # A request this large is not kept for replay at all (its size in bytes says so).
    assert "metadata" not in event
    assert event["truncated"]["metadata"] > 16384
    if field == "redirect_uris":
        assert event["redirect_uris"] == sent["redirect_uris"][:100]
        assert event["truncated"] == {"redirect_uris": COUNT, "metadata": ANY}
    else:
        assert event["redirect_uris"] == sent["redirect_uris"]
        assert set(event["truncated"]) == {"metadata"}
    assert len(gateway.audit_text().encode()) < 32_000


async def test_forty_in_flight_do_not_delay_health(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    body = body_of()
    before = await upstream.aclient_count(session)
    async with aiohttp.ClientSession() as probe:
        await request(probe, "GET", gateway.url + "/-/healthz")  # a warm connection
        tasks = [
            asyncio.create_task(
                request(session, "POST", gateway.url + "/reg", data=body, headers=HEADERS)
            )
            for _ in range(40)
        ]
        await asyncio.sleep(0.005)  # let them connect and start sending
        health = await request(probe, "GET", gateway.url + "/-/healthz")
        answers = await asyncio.gather(*tasks)
    assert health.status == 200
    assert health.json() == {"status": "ok"}
    assert health.elapsed < 0.5, f"healthz took {health.elapsed * 1000:.0f} ms"
    assert [a.status for a in answers] == [400] * 40
    events = gateway.registrations()
    assert len(events) == 40
    assert {e["rule"] for e in events} == {"redirect_uri.too_many"}
    assert all(e["truncated"] == {"redirect_uris": COUNT, "metadata": ANY} for e in events)
    assert await upstream.aclient_count(session) == before
