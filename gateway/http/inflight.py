"""Counting the requests being handled, so that a graceful shutdown can wait for them.

Counted in the server's request handler (:func:`gateway.http.protocol.
serve_with_gateway_protocol`), not in an aiohttp middleware: a middleware costs every
request, pass-through included, more than everything else the gateway adds to it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class InFlight:
    """How many requests are being handled; ``drained()`` waits until none is."""

    def __init__(self) -> None:
        self.count = 0
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self, response: web.StreamResponse | None) -> None:
        """One request done; while stopping, its connection takes no next request."""
        if response is not None and self.stopping and not response.prepared:
            response.force_close()
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is being handled; ``False`` if ``timeout`` passed first."""
        self.stopping = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


#: Set on an application before its server starts, to have its requests counted.
IN_FLIGHT = web.AppKey("in_flight", InFlight)
