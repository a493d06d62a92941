"""``admin.listen``: the admin API on a listener of its own.  The public listener, where
the OAuth endpoints are, answers 404 under ``/-/admin/`` (it has no such routes at all),
and the admin listener serves the admin API and health, still behind the admin token."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import ADMIN_ADDRESS
from gateway.config.settings import Listen

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-listener-test-token-0123456789abcdef"
OPEN = {"version": 1, "mode": "open"}


async def test_the_admin_api_lives_only_on_its_own_listener(upstream, gateway_factory):
    gateway = await gateway_factory(
        upstream.url,
        policy=OPEN,
        admin_token=ADMIN_TOKEN,
        admin_listen=Listen("127.0.0.1", 0),
    )
    admin_url = gateway.app[ADMIN_ADDRESS]["url"]
    assert admin_url != gateway.url
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        for path in ("/-/admin/clients", "/-/admin/initial-access-tokens"):
            async with session.get(gateway.url + path, headers=auth) as public:
                assert public.status == 404, path
            async with session.get(admin_url + path, headers=auth) as admin:
                assert admin.status == 200, path
            async with session.get(admin_url + path) as anonymous:
                assert anonymous.status == 401, path
        async with session.get(admin_url + "/-/healthz") as health:
            assert health.status == 200
        # The OAuth endpoints are not on the admin listener.
        async with session.get(admin_url + "/.well-known/openid-configuration") as oauth:
            assert oauth.status == 404
        async with session.get(gateway.url + "/.well-known/openid-configuration") as oauth:
            assert oauth.status == 200
    admin_events = [e for e in gateway.events() if e["event"].startswith("admin.")]
    assert {e["decision"] for e in admin_events} == {"allowed", "denied"}


async def test_serve_health_moves_readiness_to_the_admin_listener(upstream, gateway_factory):
    """With ``admin.serve_health`` the public listener says only that it is alive; which
    dependency is down is told on the admin listener, and without the admin token (an
    orchestrator's probe has none)."""
    gateway = await gateway_factory(
        upstream.url,
        policy=OPEN,
        admin_token=ADMIN_TOKEN,
        admin_listen=Listen("127.0.0.1", 0),
        serve_health=True,
    )
    admin_url = gateway.app[ADMIN_ADDRESS]["url"]
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url + "/-/healthz") as alive:
            assert alive.status == 200
            assert await alive.json() == {"status": "ok"}
        async with session.get(gateway.url + "/-/readyz") as public:
            assert public.status == 404
            assert "checks" not in await public.json()
        async with session.get(admin_url + "/-/readyz") as ready:
            assert ready.status == 200
            body = await ready.json()
            assert body["status"] == "ready"
            assert set(body["checks"]) == {"upstream", "storage"}
        async with session.get(admin_url + "/-/healthz") as admin_alive:
            assert admin_alive.status == 200


async def test_without_serve_health_readiness_stays_public(upstream, gateway_factory):
    gateway = await gateway_factory(
        upstream.url, policy=OPEN, admin_token=ADMIN_TOKEN, admin_listen=Listen("127.0.0.1", 0)
    )
    admin_url = gateway.app[ADMIN_ADDRESS]["url"]
    async with aiohttp.ClientSession() as session:
        for url in (gateway.url, admin_url):
            async with session.get(url + "/-/readyz") as ready:
                assert ready.status == 200, url
                assert (await ready.json())["checks"]["storage"] == "ok"
