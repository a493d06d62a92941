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

import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway import rules
from gateway.config.settings import Upstream
from gateway.errors import OAuthError
from gateway.http.forwarding import downstream_response_headers
from gateway.upstream.deadline import Deadline, Deadlines

if TYPE_CHECKING:
    from gateway.metrics import Metrics

#: Rules of an upstream answer the gateway could not use, as upstream error kinds.
_BAD_ANSWERS = {"upstream.response_too_large": "too_large", "upstream.encoding": "encoding"}


class VerbatimRequest(aiohttp.ClientRequest):
    """A client request that adds none of aiohttp's automatic headers (``User-Agent``,
    ``Accept``, ``Accept-Encoding``, ``Content-Type``): the upstream sees what the client
    sent, minus what the gateway removes, plus what it adds, nothing else.  An
    ``Accept-Encoding: gzip`` the client never sent would make the upstream compress an
    answer the client cannot read.

    The same as ``skip_auto_headers`` naming all of them, which aiohttp turns into a new
    ``CIMultiDict`` (and a copy of the request's headers) on every request.
    """

    _SKIP = CIMultiDict(
        (name, None) for name in ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
    )

    def update_auto_headers(self, skip_auto_headers: object) -> None:
        self._skip_auto_headers = self._SKIP

    def update_headers(self, headers: object) -> None:
        """As aiohttp's: ``Host`` from the URL first, unless the headers carry one, then
        every header in order; copied in one ``CIMultiDict`` construction rather than
        added one by one (the session has already made ``headers`` a ``CIMultiDict``)."""
        if not isinstance(headers, CIMultiDict) or "Host" in headers:
            super().update_headers(headers)  # type: ignore[arg-type]
            return
        host = self.url.host_port_subcomponent
        assert host is not None  # an absolute URL, always
        out: CIMultiDict[str] = CIMultiDict(Host=host)
        out.extend(headers)
        self.headers = out


class UpstreamClient:
    """The HTTP sessions of an application, and how to build upstream URLs."""

    def __init__(self, settings: Upstream, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.preserve_host = settings.preserve_host
        if metrics is None:
            from gateway.metrics import Metrics

            metrics = Metrics()
        self.metrics = metrics
        self.base = settings.url
        self._prefix = settings.url.raw_path.rstrip("/")
        self._scheme = settings.url.scheme
        self._authority = settings.url.raw_authority
        #: Deadlines of pass-through exchanges, sharing timers (see gateway.upstream.deadline).
        self.deadlines = Deadlines()
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
            request_class=VerbatimRequest,
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
        return URL.build(
            scheme=self._scheme,
            authority=self._authority,
            path=self._prefix + rel_url.raw_path,
            query_string=rel_url.raw_query_string,
            encoded=True,
        )

    @asynccontextmanager
    async def send(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: object = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One guarded upstream exchange whose answer is read within ``upstream.timeout``;
        connection faults become 502/504 wire errors.  The time to the answer's headers
        and every fault are counted in the metrics."""
        metrics = self.metrics
        started = time.perf_counter()
        try:
            # A shared timer slot (gateway.upstream.deadline), not a timer of its own.
            with Deadline(self.deadlines, self.settings.timeout):
                async with self.guarded.request(
                    method, url, headers=headers, data=data, allow_redirects=False
                ) as response:
                    metrics.upstream_answered(time.perf_counter() - started)
                    yield response
        except TimeoutError as exc:
            metrics.upstream_failed("timeout", "guarded")
            raise timeout_error() from exc
        except aiohttp.ClientError as exc:
            metrics.upstream_failed("connect", "guarded")
            raise unreachable_error() from exc
        except OAuthError as exc:
            kind = _BAD_ANSWERS.get(exc.rule)
            if kind is not None:
                metrics.upstream_failed(kind, "guarded")
            raise


def timeout_error() -> OAuthError:
    return rules.UPSTREAM_TIMEOUT.refuse("the authorization server did not answer in time")


def unreachable_error() -> OAuthError:
    return rules.UPSTREAM_UNREACHABLE.refuse("the authorization server could not be reached")


#: Content codings the gateway decodes when an upstream ignores ``Accept-Encoding:
#: identity`` (RFC 9110 §8.4.1): zlib's wbits for each.
_ZLIB_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}


def decode_answer(body: bytes, coding: str | None, limit: int) -> bytes:
    """The answer's bytes without its content coding, at most ``limit`` of them.

    Guarded answers are read, rewritten and relayed (``registration_endpoint``,
    ``registration_client_uri``), so they must be readable: the gateway asks for
    ``identity``, and an upstream (or a compressing proxy in front of it) that sends gzip
    anyway is decoded here, bounded so that a small compressed answer cannot expand
    without end.  Any other coding is refused: relaying what the gateway cannot read would
    hand clients the upstream's own, unguarded endpoints.
    """
    name = (coding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _ZLIB_CODINGS.get(name)
    if wbits is None:
        raise rules.UPSTREAM_ENCODING.refuse(
            "the authorization server answered in a content coding the gateway cannot read"
        )
    try:
        if name == "deflate":  # RFC 9110 §8.4.1.2 says zlib; some servers send raw deflate
            wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(body, limit + 1)
    except zlib.error:
        raise rules.UPSTREAM_ENCODING.refuse(
            "the authorization server's answer is not valid " + name
        ) from None
    if len(out) > limit:
        raise rules.UPSTREAM_RESPONSE_TOO_LARGE.refuse(
            "the authorization server's answer was too large"
        )
    return out


def _answer_too_large() -> OAuthError:
    return rules.UPSTREAM_RESPONSE_TOO_LARGE.refuse(
        "the authorization server's answer was too large"
    )


async def read_answer(
    stream: aiohttp.StreamReader, limit: int, declared: int | None = None
) -> bytes:
    """The upstream's whole answer, at most ``limit`` bytes, refused up front when its
    ``Content-Length`` already says more (``read(n)`` alone may stop at whatever happens
    to be buffered)."""
    if declared is not None and declared > limit:
        raise _answer_too_large()
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise _answer_too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_guarded(
    answer: aiohttp.ClientResponse, limit: int
) -> tuple[bytes, CIMultiDict[str]]:
    """A guarded answer (registration, management, discovery) read whole and decoded,
    with the headers to relay it under: hop-by-hop ones and ``Content-Encoding`` gone,
    since what is relayed is the decoded (and perhaps rewritten) body."""
    body = await read_answer(answer.content, limit, answer.content_length)
    body = decode_answer(body, answer.headers.get("Content-Encoding"), limit)
    headers = downstream_response_headers(answer.headers)
    headers.popall("Content-Encoding", None)
    return body, headers
