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
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from gateway import rules
from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.http.forwarding import downstream_header_items, upstream_request_headers
from gateway.http.responses import error_response
from gateway.state import Gateway
from gateway.upstream.client import timeout_error, unreachable_error
from gateway.upstream.deadline import Deadline

#: Bodies (request or answer) up to this size are read whole and sent in one write.
SMALL_BODY = 64 * 1024


class UploadFailed(Exception):
    """A streamed request body broke on the client's side (stalled, bad framing, hung up):
    the answer is the client's error, not the authorization server's."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description)
        self.error = error


async def pass_through(
    request: web.Request,
    gateway: Gateway,
    *,
    body: bytes | None = None,
    rel_url: URL | None = None,
    set_headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Relay the request to the upstream and its answer back; ``body``: the whole request
    body, already read by the caller (:func:`read_small_body`); ``rel_url``: the target to
    send instead of the request's (a rewritten ``client_id``); ``set_headers``: headers
    to send instead of the client's (a bridged client's ``Authorization``).  Each answer
    is counted (``dcr_gateway_passthrough_requests_total``).

    This is the hot path: everything here is done once, inline, without the helpers the
    guarded paths use (``UpstreamClient.send``, a generator-based context manager, costs
    more than all the gateway adds to a request)."""
    method = request.method
    upstream = gateway.upstream
    incoming = request.headers
    caller = gateway.trusted.identify(request.remote, incoming)
    rid = caller.request_id
    settings = gateway.settings
    headers = upstream_request_headers(
        incoming, caller, public_url=settings.public_url, preserve_host=upstream.preserve_host
    )
    if set_headers:
        for name, value in set_headers.items():
            headers[name] = value
    timeout = upstream.settings.timeout
    idle = settings.limits.passthrough_body_timeout
    response: web.StreamResponse
    try:
        if body is not None:
            first: bytes | None = body
        else:
            first = await read_small_body(request, idle) if request.body_exists else None
    except OAuthError as error:
        response = _close(error_response(error, rid))
        gateway.metrics.passthrough(method, response.status)
        return response
    streamed = first is not None and not request.content.at_eof()
    if streamed:
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
    elif first is not None:
        headers["Content-Length"] = str(len(first))
    # The answer's deadline starts once the request is sent: a large upload that keeps
    # arriving on time may take longer than upstream.timeout (each chunk has `idle`).
    try:
        with Deadline(upstream.deadlines, None if streamed else timeout) as deadline:
            data = _stream(request, first or b"", idle, deadline, timeout) if streamed else first
            async with upstream.passthrough.request(
                method,
                upstream.url_for(request.rel_url if rel_url is None else rel_url),
                headers=headers,
                data=data,
                allow_redirects=False,
            ) as answer:
                length = answer.content_length
                status = answer.status
                if (
                    length is not None
                    and length <= SMALL_BODY
                    and method != "HEAD"
                    and status != 204
                    and status != 304
                ):  # the common case, inline: one write, headers and body together
                    response = web.Response(
                        status=status,
                        reason=answer.reason,
                        headers=downstream_header_items(answer.headers, rid),
                        body=await answer.read(),
                    )
                else:
                    response = await relay_response(request, answer, rid, deadline, timeout)
    except UploadFailed as failed:
        response = _close(error_response(failed.error, rid))
    except TimeoutError:
        gateway.metrics.upstream_failed("timeout", "passthrough")
        response = error_response(timeout_error(), rid)
    except aiohttp.ClientError as exc:
        if isinstance(exc.__cause__, UploadFailed):
            response = _close(error_response(exc.__cause__.error, rid))
        else:
            gateway.metrics.upstream_failed("connect", "passthrough")
            response = error_response(unreachable_error(), rid)
    except Exception:
        log().exception("pass_through_failed", request_id=rid, path=request.rel_url.raw_path)
        response = error_response(rules.internal_error(), rid)
    gateway.metrics.passthrough(method, response.status)
    return response


def _close(response: web.Response) -> web.Response:
    """The connection cannot be reused: the rest of the client's body is still unread."""
    response.force_close()
    return response


async def read_small_body(request: web.Request, idle: float) -> bytes | None:
    """``None`` without a body; otherwise the whole body when it is small (within ``idle``
    seconds in all), else its first :data:`SMALL_BODY` bytes or so (each chunk within
    ``idle``; the rest is streamed by :func:`_stream`)."""
    if not request.body_exists:
        return None
    length = request.content_length
    whole = length is not None and length <= SMALL_BODY
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(idle if whole else None):
            while whole or size < SMALL_BODY:
                chunk = await _next_chunk(request, idle)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except TimeoutError:
        raise _stalled(idle) from None
    return b"".join(chunks)


async def _next_chunk(request: web.Request, idle: float) -> bytes:
    """The next chunk of the request body within ``idle`` seconds; every way it can fail
    becomes the client's wire error."""
    try:
        async with asyncio.timeout(idle):
            return await request.content.readany()
    except TimeoutError:
        raise _stalled(idle) from None
    except HttpProcessingError:
        raise rules.REQUEST_BAD_FRAMING.refuse("the request body's framing is invalid") from None
    except (ConnectionError, asyncio.IncompleteReadError, aiohttp.ClientError):
        raise rules.CLIENT_DISCONNECTED.refuse("the client hung up mid-body") from None


def _stalled(idle: float) -> OAuthError:
    return rules.REQUEST_TIMEOUT.refuse(f"the request body stalled for more than {idle:g} seconds")


async def _stream(
    request: web.Request,
    first: bytes,
    idle: float,
    deadline: Deadline,
    timeout: float,
) -> AsyncIterator[bytes]:
    """The rest of a large body, each chunk within ``idle`` seconds; when the last chunk is
    sent the answer's ``deadline`` starts.  A stall, broken framing or a client that hangs
    up ends the upload with :class:`UploadFailed`."""
    if first:
        yield first
    while True:
        try:
            chunk = await _next_chunk(request, idle)
        except OAuthError as error:
            raise UploadFailed(error) from None
        if not chunk:
            deadline.reschedule_in(timeout)
            return
        yield chunk


async def relay_response(
    request: web.Request,
    response: aiohttp.ClientResponse,
    request_id: str,
    deadline: Deadline,
    chunk_timeout: float,
) -> web.StreamResponse:
    """Send the upstream's answer to the client: status, reason, headers, body.

    A small answer is read within the exchange's ``deadline`` and sent in one write; a
    streamed one lifts it and gives each chunk ``chunk_timeout`` instead, so a long
    download is not cut short.
    """
    headers = downstream_header_items(response.headers, request_id)
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
