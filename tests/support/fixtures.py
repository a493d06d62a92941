"""Shared pytest fixtures for tests that need the node-oidc-provider test server.

Import the ones you use into a test module (``from tests.support.fixtures import upstream``);
conftest files belong to the gateway's tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from tests.support.upstream import UpstreamServer


class UpstreamFactory(Protocol):
    """Signature of the ``upstream_factory`` fixture (same as ``UpstreamServer.start``)."""

    def __call__(
        self,
        port: int | None = None,
        issuer: str | None = None,
        test_endpoints: bool = True,
        **kwargs: Any,
    ) -> UpstreamServer: ...


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamServer]:
    """One server for the whole session: test endpoints on, issuer = its own URL.

    Its state is shared: clients registered by one test stay for the next, so compare counts
    before and after rather than expecting absolute numbers.
    """
    server = UpstreamServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream_factory() -> Iterator[UpstreamFactory]:
    """Start servers with custom arguments (e.g. ``issuer=<gateway URL>``); stop them after."""
    servers: list[UpstreamServer] = []

    def start(
        port: int | None = None,
        issuer: str | None = None,
        test_endpoints: bool = True,
        **kwargs: Any,
    ) -> UpstreamServer:
        server = UpstreamServer()
        servers.append(server)
        return server.start(port, issuer, test_endpoints, **kwargs)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
