"""The HTTP client towards the upstream authorization server, and how to reach it.

Two connection pools, so pass-through traffic cannot starve the guarded paths: 110 slow
``POST /token`` uploads once held every connection of a single pool and registrations then
timed out.  ``passthrough`` serves everything the gateway relays untouched; ``guarded``
(``upstream.guarded_connections``) is reserved for the requests the gateway judges itself
(registration, management, discovery).  Redirects are returned rather than followed, and
cookies are never stored: one session serves all users, so a cookie jar would leak one
user's session into another's request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway import rules
from gateway.config.settings import Upstream
from gateway.errors import OAuthError


class UpstreamClient:
    """The HTTP sessions of an application, and how to build upstream URLs."""

    def __init__(self, settings: Upstream) -> None:
        self.settings = settings
        self.base = settings.url
        self._prefix = settings.url.raw_path.rstrip("/")
        self._origin = str(settings.url.origin())
        self._passthrough: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    def _session(self, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=limit, limit_per_host=limit, enable_cleanup_closed=True
        )
        return aiohttp.ClientSession(
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

    async def start(self) -> None:
        self._passthrough = self._session(self.settings.max_connections)
        self._guarded = self._session(self.settings.guarded_connections)

    async def close(self) -> None:
        for session in (self._passthrough, self._guarded):
            if session is not None:
                await session.close()
        self._passthrough = self._guarded = None

    @property
    def passthrough(self) -> aiohttp.ClientSession:
        """The pool for relayed traffic."""
        if self._passthrough is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._passthrough

    @property
    def guarded(self) -> aiohttp.ClientSession:
        """The pool reserved for requests the gateway judges itself."""
        if self._guarded is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._guarded

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
        """One guarded upstream exchange whose answer is read within ``upstream.timeout``;
        connection faults become 502/504 wire errors."""
        try:
            async with (
                asyncio.timeout(self.settings.timeout),
                self.guarded.request(
                    method, url, headers=headers, data=data, allow_redirects=False
                ) as response,
            ):
                yield response
        except TimeoutError as exc:
            raise timeout_error() from exc
        except aiohttp.ClientError as exc:
            raise unreachable_error() from exc


def timeout_error() -> OAuthError:
    return rules.UPSTREAM_TIMEOUT.refuse("the authorization server did not answer in time")


def unreachable_error() -> OAuthError:
    return rules.UPSTREAM_UNREACHABLE.refuse("the authorization server could not be reached")


async def read_answer(
    stream: aiohttp.StreamReader, limit: int, declared: int | None = None
) -> bytes:
    """The upstream's whole answer, at most ``limit`` bytes, refused up front when its
    ``Content-Length`` already says more (``read(n)`` alone may stop at whatever happens
    to be buffered)."""
    too_large = rules.UPSTREAM_RESPONSE_TOO_LARGE.refuse(
        "the authorization server's answer was too large"
    )
    if declared is not None and declared > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
