"""An HTTP reverse proxy that compresses answers, as nginx with ``gzip on`` would.

Put it between the gateway and node-oidc-provider (which never compresses itself) to see
what the gateway does with an upstream that honours ``Accept-Encoding: gzip``: every
answer with a body is gzip-encoded when the request accepted gzip.  ``always=True`` makes
it a misbehaving one, which compresses even when the request asked for ``identity``.
"""

from __future__ import annotations

import gzip

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

_HOP = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)


class CompressingProxy:
    def __init__(self, upstream_url: str, *, always: bool = False) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.always = always
        self.accept_encodings: list[str] = []  # the Accept-Encoding of every request
        self.compressed = 0  # how many answers went out gzip-encoded
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0

    async def start(self) -> CompressingProxy:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, skip_auto_headers=("Accept-Encoding", "User-Agent")
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]  # the port the OS picked
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        target = URL(self.upstream_url + request.rel_url.raw_path_qs, encoded=True)
        async with self._session.request(
            request.method,
            target,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            out = [(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP]
        accepted = request.headers.get("Accept-Encoding", "")
        self.accept_encodings.append(accepted)
        if data and (self.always or "gzip" in accepted.lower()):
            data = gzip.compress(data)
            out.append(("Content-Encoding", "gzip"))
            out.append(("Vary", "Accept-Encoding"))
            self.compressed += 1
        return web.Response(status=answer.status, body=data, headers=CIMultiDict(out))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
