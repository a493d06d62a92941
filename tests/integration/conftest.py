"""Fixtures shared by the integration tests: a client session, a recording TCP relay in
front of the bundled upstream, and (from :mod:`tests.support`) the CIMD document hosts,
the CIMD flow upstream and a Redis storage URI, for the modules that ask for them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.cimd_gateway import cimd_authority, cimd_upstream, documents
from tests.support.lifecycle import redis_storage
from tests.support.tcp_proxy import RecordingProxy

__all__ = ["cimd_authority", "cimd_upstream", "documents", "redis_storage"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def proxy(upstream) -> AsyncIterator[RecordingProxy]:
    """A :class:`RecordingProxy` in front of the ``upstream`` fixture's server."""
    relay = await RecordingProxy(upstream.port).start()
    try:
        yield relay
    finally:
        await relay.close()
