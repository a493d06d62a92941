"""``/-/metrics`` against the real upstream: every decision counted once, as its audit
event, pass-through answers by status class, and no label value a client chose."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import ADMIN_ADDRESS
from gateway.config.settings import Listen, MetricsSettings
from gateway.state import GATEWAY
from tests.support.cimd_gateway import allowlist, authorize, document, start_gateway
from tests.support.controls import OPEN, bearer
from tests.support.metrics import nonzero, parse, samples, scrape, value
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

CLAUDE = {
    "client_name": "claudeai",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_post",
    "scope": "mcp:execute offline_access",
}
#: Refused by the shipped policy: matches no managed entry and no custom pattern.
STRANGER = {
    "client_name": "Metrics Stranger 7f3a",
    "redirect_uris": ["https://stranger-7f3a.example.com/oauth/cb"],
}
ADMIN_TOKEN = "m" * 40


async def test_registrations_and_pass_through_are_counted_exactly(
    upstream, gateway_factory, session
):
    gateway = await gateway_factory(upstream.url)
    async with session.post(gateway.url + "/reg", json=CLAUDE) as response:
        assert response.status == 201
    async with session.post(gateway.url + "/reg", json=STRANGER) as response:
        assert response.status == 400
    for _ in range(3):
        async with session.get(gateway.url + "/__test/echo") as response:
            assert response.status == 200
    async with session.post(gateway.url + "/__test/echo", data=b"x") as response:
        assert response.status == 200
    async with session.get(gateway.url + "/no/such/path") as response:
        assert response.status == 404

    scraped = parse(await scrape(session, gateway.url))
    assert nonzero(scraped, "dcr_gateway_registrations_total") == {
        (
            ("decision", "allowed"),
            ("rule", "allow.managed"),
            ("source", "dcr"),
            ("tenant", "default"),
            ("vendor", "claude"),
        ): 1.0,
        (
            ("decision", "denied"),
            ("rule", "redirect_uri.not_allowed"),
            ("source", "dcr"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
    }
    assert nonzero(scraped, "dcr_gateway_passthrough_requests_total") == {
        (("method", "GET"), ("status_class", "2xx")): 3.0,
        (("method", "POST"), ("status_class", "2xx")): 1.0,
        (("method", "GET"), ("status_class", "4xx")): 1.0,
    }
    # Both registrations were judged; the allowed one went upstream (discovery may too).
    assert value(scraped, "dcr_gateway_decision_seconds_count", kind="registration") == 2.0
    assert value(scraped, "dcr_gateway_upstream_seconds_count") >= 1.0
    assert nonzero(scraped, "dcr_gateway_upstream_errors_total") == {}
    assert nonzero(scraped, "dcr_gateway_rate_limited_total") == {}
    assert value(scraped, "dcr_gateway_registry_clients", status="active") == 1.0
    assert value(scraped, "dcr_gateway_policy_reloads_total", result="ok") == 0.0
    revision = gateway.app[GATEWAY].policies.default.revision
    assert value(scraped, "dcr_gateway_policy_revision_info", tenant="default", revision=revision)
    # One event per decision, one count per event.
    assert len(gateway.registrations()) == 2


async def test_management_and_rate_limits_are_counted(upstream, gateway_factory, session):
    limit = {"name": "per_ip", "key": "client_ip", "limit": "2/minute", "count": "attempts"}
    gateway = await gateway_factory(upstream.url, policy={**OPEN, "rate_limits": [limit]})
    client = {"client_name": "Metered", "redirect_uris": ["https://app.example.com/cb"]}
    async with session.post(gateway.url + "/reg", json=client) as response:
        created = await response.json()
    for _ in range(2):
        async with session.post(gateway.url + "/reg", json=client) as response:
            last = response.status
    assert last == 429
    uri = created["registration_client_uri"]
    async with session.get(uri, headers=bearer(created["registration_access_token"])) as answer:
        assert answer.status == 200
    scraped = parse(await scrape(session, gateway.url))
    assert nonzero(scraped, "dcr_gateway_rate_limited_total") == {
        (("limit", "per_ip"), ("tenant", "default")): 1.0
    }
    assert (
        value(
            scraped,
            "dcr_gateway_registrations_total",
            decision="denied",
            rule="rate_limit.per_ip",
            vendor="unknown",
            tenant="default",
            source="dcr",
        )
        == 1.0
    )
    assert nonzero(scraped, "dcr_gateway_management_total") == {
        (
            ("decision", "allowed"),
            ("operation", "read"),
            ("rule", "allow.management"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0
    }


async def test_an_unreachable_upstream_counts_as_connect_errors(gateway_factory, session):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, registration_paths=("/reg",))
    async with session.get(gateway.url + "/anything") as response:
        assert response.status == 502
    async with session.post(gateway.url + "/reg", json=STRANGER) as response:
        assert response.status == 400  # refused before anything goes upstream
    async with session.post(
        gateway.url + "/reg", json={**CLAUDE, "client_name": "claudeai"}
    ) as response:
        assert response.status == 502
    scraped = parse(await scrape(session, gateway.url))
    errors = nonzero(scraped, "dcr_gateway_upstream_errors_total")
    assert errors[(("kind", "connect"), ("pool", "passthrough"))] == 1.0
    assert errors[(("kind", "connect"), ("pool", "guarded"))] >= 1.0  # discovery tries too
    assert (
        value(scraped, "dcr_gateway_passthrough_requests_total", method="GET", status_class="5xx")
        == 1.0
    )
    assert (
        value(
            scraped,
            "dcr_gateway_registrations_total",
            decision="error",
            rule="upstream.unreachable",
            vendor="claude",
            tenant="default",
            source="dcr",
        )
        == 1.0
    )


async def test_a_refused_metadata_document_is_counted_with_its_fetch(
    cimd_upstream, gateway_factory, cimd_authority, documents, session
):
    host = "mcp-client.example.com"
    gateway = await start_gateway(
        gateway_factory, cimd_upstream, cimd_authority, policy=allowlist([f"https://{host}:*/ok/*"])
    )
    url = documents.serve(
        host, "/elsewhere/c.json", document(documents.url(host, "/elsewhere/c.json"))
    )
    page = await authorize(session, gateway, url)
    assert page.status == 400
    page = await authorize(session, gateway, url)
    assert page.status == 400
    scraped = parse(await scrape(session, gateway.url))
    assert nonzero(scraped, "dcr_gateway_cimd_decisions_total") == {
        (
            ("cache", "fetch"),
            ("decision", "denied"),
            ("rule", "cimd.not_allowed"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
        (
            ("cache", "hit"),
            ("decision", "denied"),
            ("rule", "cimd.not_allowed"),
            ("tenant", "default"),
            ("vendor", "unknown"),
        ): 1.0,
    }
    assert nonzero(scraped, "dcr_gateway_cimd_fetches_total") == {(("outcome", "ok"),): 1.0}
    assert value(scraped, "dcr_gateway_cimd_fetch_seconds_count") == 1.0
    assert value(scraped, "dcr_gateway_decision_seconds_count", kind="cimd") == 2.0
    text = await scrape(session, gateway.url)
    assert_no_client_values(text, [url, host, "elsewhere"])


async def test_no_label_value_is_what_a_client_sent(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    sent = {
        "client_name": "Label Probe 91c2",
        "redirect_uris": ["https://probe-91c2.example.com/oauth/cb"],
        "software_id": "probe-software-91c2",
    }
    async with session.post(gateway.url + "/reg", json=sent) as response:
        created = await response.json()
    async with session.post(gateway.url + "/reg", json={**sent, "scope": "x" * 300}) as response:
        assert response.status >= 400
    async with session.get(gateway.url + "/probe-91c2/path?client_id=probe-91c2") as response:
        assert response.status == 404
    text = await scrape(session, gateway.url)
    assert_no_client_values(
        text,
        ["91c2", created["client_id"], "probe", "Label", "example.com"],
    )


def assert_no_client_values(text: str, needles: list[str]) -> None:
    for sample in samples(text):
        for name, label in sample.labels.items():
            for needle in needles:
                assert needle.lower() not in label.lower(), (sample.name, name, label)


async def test_metrics_can_live_only_on_the_admin_listener(upstream, gateway_factory, session):
    gateway = await gateway_factory(
        upstream.url,
        admin_listen=Listen("127.0.0.1", 0),
        metrics=MetricsSettings(listener="admin"),
    )
    async with session.get(gateway.url + "/-/metrics") as response:
        assert response.status == 404
    text = await scrape(session, gateway.app[ADMIN_ADDRESS]["url"])
    assert "dcr_gateway_registrations_total" in text


async def test_metrics_can_be_disabled(upstream, gateway_factory, session):
    gateway = await gateway_factory(upstream.url, metrics=MetricsSettings(enabled=False))
    async with session.get(gateway.url + "/-/metrics") as response:
        assert response.status == 404


async def test_metrics_can_require_the_admin_token(upstream, gateway_factory):
    gateway = await gateway_factory(
        upstream.url,
        admin_token=ADMIN_TOKEN,
        metrics=MetricsSettings(require_admin_token=True),
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url + "/-/metrics") as response:
            assert response.status == 401
            assert (await response.json())["error"] == "invalid_token"
        async with session.get(gateway.url + "/-/metrics", headers=bearer("n" * 40)) as response:
            assert response.status == 401
        text = await scrape(session, gateway.url, headers=bearer(ADMIN_TOKEN))
    assert "dcr_gateway_passthrough_requests_total" in text
