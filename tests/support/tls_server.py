"""An aiohttp application served over real TLS on 127.0.0.1, counting TCP connections.

The metadata document servers of the CIMD tests share this: a ``trustme`` certificate, an
ephemeral port, and a connection count, so a test can prove a refused fetch never
connected at all.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import trustme
from aiohttp import web


class TlsAppServer:
    """``async with`` it to serve :meth:`application` on ``https://127.0.0.1:<port>``."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self._cert = cert
        self.connections = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    def application(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        handler = self._runner.server
        assert handler is not None

        def factory() -> Any:
            self.connections += 1
            return handler()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
