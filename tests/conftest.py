"""Fixtures shared by every test: the real upstream, a real Redis, the gateway in-process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support.fixtures import upstream, upstream_factory  # noqa: F401  (fixtures)
from tests.support.gateway import RunningGateway, build, make_policies, make_settings
from tests.support.redis import RedisServer
from tests.support.upstream import free_port

# Reproducible in CI (same examples every run) and no .hypothesis/ directory written.
settings.register_profile("dcr", database=None, deadline=None, derandomize=True, print_blob=True)
settings.load_profile("dcr")

GatewayFactory = Callable[..., Awaitable[RunningGateway]]


if os.environ.get("DCR_TEST_EVENT_LOOP") == "uvloop":

    def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
        """``DCR_TEST_EVENT_LOOP=uvloop``: every test on uvloop (what ``dcr-gateway run
        --event-loop uvloop`` serves on) instead of asyncio's own loop."""
        import uvloop

        return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def gateway_factory(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways in this test's event loop: ``await gateway_factory(upstream.url)``."""
    count = 0

    async def start(
        upstream_url: str,
        *,
        policy: Any = None,
        policies: Mapping[str, Any] | None = None,
        port: int | None = None,
        **settings: Any,
    ) -> RunningGateway:
        """``policies`` maps tenants (Keycloak realms) to their own policies; unless
        ``tenants=`` is given, they are also the configured tenants."""
        nonlocal count
        count += 1
        port = port or free_port()
        audit_path = tmp_path / f"audit-{count}.jsonl"
        if policies:
            settings.setdefault(
                "tenants", tuple((realm, tmp_path / f"{realm}.yaml") for realm in policies)
            )
        config = make_settings(upstream_url, port, audit_path, **settings)
        app = build(config, make_policies(policy, policies))
        await aiohttp_server(app, host="127.0.0.1", port=port)
        return RunningGateway(f"http://127.0.0.1:{port}", app, audit_path)

    yield start
