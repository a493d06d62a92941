"""The transparent half of the gateway: every request that is not guarded.

Bodies are relayed in both directions untouched but for hop-by-hop and forwarding headers
(RFC 9110 §7.6).  A request body up to :data:`SMALL_BODY` bytes is read whole, within
``limits.passthrough_body_timeout``, *before* an upstream connection is taken: a client
that sends one byte and then goes silent costs the gateway a socket, never a connection of
the upstream pool (and small bodies are faster to send in one write anyway).  A larger body
is streamed with an idle timeout per chunk.  Answers up to :data:`SMALL_BODY` with a known
length are sent in one write; larger ones stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway import rules
from gateway.audit.logging import log
from gateway.errors import OAuthError, internal_error
from gateway.http.forwarding import downstream_response_headers
from gateway.http.responses import error_response
from gateway.state import Gateway
from gateway.upstream.client import timeout_error, unreachable_error

#: Bodies (request or answer) up to this size are read whole and sent in one write.
SMALL_BODY = 64 * 1024


async def pass_through(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    """Relay the request to the upstream and its answer back."""
    caller = gateway.identify(request)
    rid = caller.request_id
    headers = gateway.upstream_headers(request, caller)
    upstream = gateway.upstream
    timeout = upstream.settings.timeout
    try:
        data = await _request_body(request, gateway.settings.limits.passthrough_body_timeout)
    except OAuthError as error:
        return error_response(error, rid)
    except (ConnectionError, asyncio.IncompleteReadError, aiohttp.ClientError):
        return error_response(rules.CLIENT_DISCONNECTED.refuse("the client hung up"), rid)
    if isinstance(data, bytes):
        headers["Content-Length"] = str(len(data))
    elif data is not None and request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    # Inlined rather than UpstreamClient.send: this is the hot path, and a generator-based
    # context manager costs more here than everything the gateway itself adds.
    try:
        async with (
            asyncio.timeout(timeout) as deadline,
            upstream.passthrough.request(
                request.method,
                upstream.url_for(request.rel_url),
                headers=headers,
                data=data,
                allow_redirects=False,
            ) as answer,
        ):
            return await relay_response(request, answer, rid, deadline, timeout)
    except TimeoutError:
        return error_response(timeout_error(), rid)
    except aiohttp.ClientError:
        return error_response(unreachable_error(), rid)
    except Exception:
        log().exception("pass_through_failed", request_id=rid, path=request.rel_url.raw_path)
        return error_response(internal_error(), rid)


async def _request_body(request: web.Request, idle: float) -> bytes | AsyncIterator[bytes] | None:
    """``None`` without a body; the whole body when it is small; else a chunk stream."""
    if not request.body_exists:
        return None
    length = request.content_length
    if length is not None and length <= SMALL_BODY:
        return await _read_small(request, idle)
    first = await _read_some(request, idle, SMALL_BODY)
    if request.content.at_eof():
        return first
    return _stream(request, first, idle)


async def _read_small(request: web.Request, idle: float) -> bytes:
    try:
        async with asyncio.timeout(idle):
            return await request.content.read()
    except TimeoutError:
        raise rules.REQUEST_TIMEOUT.refuse(
            f"the request body did not arrive within {idle:g} seconds"
        ) from None
    except HttpProcessingError:
        raise rules.REQUEST_BAD_FRAMING.refuse("the request body's framing is invalid") from None


async def _read_some(request: web.Request, idle: float, limit: int) -> bytes:
    """Up to about ``limit`` bytes of a body of unknown or large size, each chunk within
    ``idle`` seconds."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        raise rules.REQUEST_TIMEOUT.refuse(
            f"the request body stalled for more than {idle:g} seconds"
        ) from None
    except HttpProcessingError:
        raise rules.REQUEST_BAD_FRAMING.refuse("the request body's framing is invalid") from None
    return b"".join(chunks)


async def _stream(request: web.Request, first: bytes, idle: float) -> AsyncIterator[bytes]:
    """The rest of a large body, each chunk within ``idle`` seconds; a stall ends the
    upload (the upstream then sees a truncated body and the exchange fails)."""
    if first:
        yield first
    while True:
        async with asyncio.timeout(idle):
            chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


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
