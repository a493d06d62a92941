"""Fixtures shared by the integration tests: a client session, and a recording TCP relay
in front of the bundled upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.tcp_proxy import RecordingProxy


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
