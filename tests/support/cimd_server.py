"""A real HTTPS server of Client ID Metadata Documents, for the fetcher's integration tests.

It listens on 127.0.0.1 with a certificate issued by a ``trustme`` CA for public-looking
names (``internal_host_problem`` refuses ``.test`` and other private names, so the tests use
``mcp-client.example.com``, ``claude.ai``, ...; the fetcher's ``resolve`` override maps them
here).  It counts requests per path (``hits``) and TCP connections (``connections``), so a
test can prove that a refused fetch never reached it, that a redirect target was never
asked for, or that twenty concurrent fetches made one request.

Routes, each one shape of answer a document server might give:

``/oauth/client.json``, ``/doc/{name}.json``
    a good document whose ``client_id`` is the URL asked for;
``/cache/{name}.json``
    a good document with the caching headers of :data:`CACHE_HEADERS`;
``/big-length.json``, ``/big-chunked.json``
    6 KiB of valid JSON, with ``Content-Length`` and chunked without it;
``/slow-body.json``, ``/slow-headers.json``
    a body that trickles a byte every 0.2 s, headers that take 3 s;
``/redirect.json`` -> ``/target.json``
    a 302 to a good document;
``/challenge.html``, ``/untyped.json``, ``/latin1.json``
    HTML with 200, JSON as ``application/octet-stream``, JSON labelled ISO-8859-1;
``/invalid.json``, ``/array.json``, ``/duplicate.json``, ``/nested-duplicate.json``
    bodies that are not one strict JSON object;
``/missing.json``, ``/error.json``, ``/flaky.json``
    404, 500, and 500 once then a good document;
``/gzip.json``
    a good document gzip-compressed, with ``Content-Encoding: gzip``;
``/wait.json``
    a good document after 0.3 s (for concurrent fetches).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trustme
from aiohttp import web

from tests.support.tls_server import TlsAppServer

BIG = 6 * 1024
#: Caching headers of the ``/cache/{name}.json`` routes.
CACHE_HEADERS: dict[str, dict[str, str]] = {
    "max-age-300": {"Cache-Control": "max-age=300"},
    "max-age-5": {"Cache-Control": "max-age=5"},
    "huge": {"Cache-Control": "public, max-age=31536000"},
    "no-store": {"Cache-Control": "no-store"},
    "s-maxage": {"Cache-Control": "max-age=100, s-maxage=1000"},
    "aged": {"Cache-Control": "max-age=600", "Age": "500"},
    "none": {},
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def document_for(request: web.Request) -> dict[str, Any]:
    """A valid metadata document whose ``client_id`` is the URL that was asked for."""
    return {
        "client_id": f"https://{request.host}{request.path_qs}",
        "client_name": "Test MCP client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
    }


def _json(payload: Any, **headers: str) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )


class CimdServer(TlsAppServer):
    """The document server; ``async with CimdServer(cert) as server: server.url(...)``."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        super().__init__(cert)
        self.hits: Counter[str] = Counter()
        #: The request headers of every request, in order.
        self.requests: list[dict[str, str]] = []

    def url(self, host: str, path: str) -> str:
        return f"https://{host}:{self.port}{path}"

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.add_routes(self._routes())
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.requests.append(dict(request.headers))
        return await handler(request)

    def _routes(self) -> list[web.RouteDef]:
        get = web.get
        return [
            get("/oauth/client.json", self._good),
            get("/doc/{name}.json", self._good),
            get("/target.json", self._good),
            get("/cache/{name}.json", self._cache),
            get("/big-length.json", self._big_length),
            get("/big-chunked.json", self._big_chunked),
            get("/slow-body.json", self._slow_body),
            get("/slow-headers.json", self._slow_headers),
            get("/redirect.json", self._redirect),
            get("/challenge.html", self._challenge),
            get("/untyped.json", self._untyped),
            get("/latin1.json", self._latin1),
            get("/invalid.json", self._raw(b'{"client_id": ')),
            get("/array.json", self._raw(b'["https://claude.ai/doc/a.json"]')),
            get("/duplicate.json", self._raw(b'{"client_id": "a", "client_id": "b"}')),
            get("/nested-duplicate.json", self._raw(b'{"jwks": {"keys": [], "keys": [1]}}')),
            get("/missing.json", self._status(404)),
            get("/error.json", self._status(500)),
            get("/flaky.json", self._flaky),
            get("/gzip.json", self._gzip),
            get("/wait.json", self._wait),
        ]

    async def _good(self, request: web.Request) -> web.Response:
        return _json(document_for(request))

    async def _cache(self, request: web.Request) -> web.Response:
        return _json(document_for(request), **CACHE_HEADERS[request.match_info["name"]])

    async def _big_length(self, request: web.Request) -> web.Response:
        return _json({**document_for(request), "padding": "x" * BIG})

    async def _big_chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        body = json.dumps({**document_for(request), "padding": "x" * BIG}).encode()
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    async def _slow_body(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"{")
        for _ in range(20):
            await asyncio.sleep(0.2)
            await response.write(b" ")
        await response.write(b"}")
        await response.write_eof()
        return response

    async def _slow_headers(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return _json(document_for(request))

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/target.json")

    async def _challenge(self, request: web.Request) -> web.Response:
        page = "<!DOCTYPE html><title>Just a moment...</title><p>Checking your browser</p>"
        return web.Response(text=page, content_type="text/html")

    async def _untyped(self, request: web.Request) -> web.Response:
        response = web.Response(body=json.dumps(document_for(request)).encode())
        response.headers.pop("Content-Type", None)
        return response

    async def _latin1(self, request: web.Request) -> web.Response:
        body = json.dumps(document_for(request)).encode()
        return web.Response(
            body=body, headers={"Content-Type": "application/json; charset=latin-1"}
        )

    def _raw(self, body: bytes) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        return handler

    def _status(self, status: int) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response({"error": "nope"}, status=status)

        return handler

    async def _flaky(self, request: web.Request) -> web.Response:
        if self.hits[request.path] == 1:
            return web.json_response({"error": "try later"}, status=500)
        return _json(document_for(request))

    async def _gzip(self, request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(document_for(request)).encode())
        return web.Response(
            body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    async def _wait(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return _json(document_for(request))
