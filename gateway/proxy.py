"""Streaming pass-through to the upstream for everything that is not registration.

Bodies are streamed in both directions (never buffered whole, except small responses whose
``Content-Length`` is known, which are sent in one write because that is faster), the query
string is kept byte for byte, redirects are returned rather than followed, and cookies are
never stored: one :class:`aiohttp.ClientSession` with a bounded pool serves all users, so a
cookie jar would leak one user's session into another's request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.audit import log
from gateway.errors import BadGateway, GatewayTimeout, OAuthError
from gateway.forwarding import downstream_response_headers
from gateway.settings import Upstream

#: Responses up to this size with a known length are read and sent in one piece.
SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024

RULE_UNREACHABLE = "upstream.unreachable"
RULE_TIMEOUT = "upstream.timeout"
RULE_INTERNAL = "internal.error"


class UpstreamClient:
    """The one HTTP client of an application, and how to reach the upstream."""

    def __init__(self, settings: Upstream) -> None:
        self.settings = settings
        self.base = settings.url
        self._prefix = settings.url.raw_path.rstrip("/")
        self._origin = str(settings.url.origin())
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            limit_per_host=self.settings.max_connections,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # The answer's deadline is one asyncio.timeout per exchange (see send and
            # pass_through): aiohttp's sock_read re-arms a timer on every chunk received.
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.settings.connect_timeout,
                sock_connect=self.settings.connect_timeout,
            ),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    def url_for(self, rel_url: URL) -> URL:
        """The upstream URL for a request target, path and query kept byte for byte."""
        target = self._prefix + rel_url.raw_path
        if rel_url.raw_query_string:
            target += "?" + rel_url.raw_query_string
        return URL(self._origin + target, encoded=True)

    @asynccontextmanager
    async def send(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: object = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One upstream exchange whose answer is read whole within ``upstream.timeout``;
        connection faults become 502/504 wire errors."""
        try:
            async with (
                asyncio.timeout(self.settings.timeout),
                self.session.request(
                    method, url, headers=headers, data=data, allow_redirects=False
                ) as response,
            ):
                yield response
        except TimeoutError as exc:
            raise timeout_error() from exc
        except aiohttp.ClientError as exc:
            raise unreachable_error() from exc


def timeout_error() -> GatewayTimeout:
    return GatewayTimeout("the authorization server did not answer in time", rule=RULE_TIMEOUT)


def unreachable_error() -> BadGateway:
    return BadGateway("the authorization server could not be reached", rule=RULE_UNREACHABLE)


def internal_error() -> BadGateway:
    """An unexpected fault, answered 502 rather than 500 (it is logged where caught)."""
    return BadGateway("the gateway could not complete the request", rule=RULE_INTERNAL)


async def relay_response(
    request: web.Request,
    response: aiohttp.ClientResponse,
    request_id: str,
    deadline: asyncio.Timeout,
    chunk_timeout: float,
) -> web.StreamResponse:
    """Send the upstream's answer to the client: status, reason, headers, body.

    A small answer is read within the exchange's ``deadline``; a streamed one lifts it
    and gives each chunk ``chunk_timeout`` instead, so a long download is not cut short.
    """
    headers = downstream_response_headers(response.headers)
    headers["X-Request-ID"] = request_id
    length = response.content_length
    no_body = request.method == "HEAD" or response.status in (204, 304)
    if not no_body and length is not None and length <= SMALL_BODY:
        body = await response.read()
        return web.Response(
            status=response.status, reason=response.reason, headers=headers, body=body
        )
    stream = web.StreamResponse(status=response.status, reason=response.reason, headers=headers)
    if length is not None:
        stream.content_length = length
    deadline.reschedule(None)
    await stream.prepare(request)
    try:
        while not no_body:
            async with asyncio.timeout(chunk_timeout):
                chunk = await response.content.readany()
            if not chunk:
                break
            await stream.write(chunk)
        await stream.write_eof()
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        # Headers are out, so no error status can follow: either side broke mid-stream,
        # and closing the connection is the only honest signal left.
        log().warning("stream_interrupted", request_id=request_id, reason=type(exc).__name__)
        if request.transport is not None:
            request.transport.close()
    return stream


def error_response(error: OAuthError, request_id: str) -> web.Response:
    """Render a wire error (RFC 7591 §3.2.2 body, ``no-store``)."""
    headers = error.headers()
    headers["X-Request-ID"] = request_id
    return web.Response(status=error.status, body=error.body(), headers=headers)
