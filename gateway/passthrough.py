"""The transparent half of the gateway: every request that is not a registration."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.audit import log
from gateway.forwarding import request_id
from gateway.proxy import (
    error_response,
    internal_error,
    relay_response,
    timeout_error,
    unreachable_error,
)
from gateway.runtime import Gateway


async def pass_through(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    """Stream the request to the upstream and its answer back, untouched but for
    hop-by-hop and forwarding headers (RFC 9110 §7.6)."""
    rid = request_id(request.headers)
    headers = gateway.upstream_headers(request, rid)
    data = None
    if request.body_exists:
        data = request.content
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
    upstream = gateway.upstream
    timeout = upstream.settings.timeout
    # Inlined rather than UpstreamClient.send: this is the hot path, and a generator-based
    # context manager costs more here than everything the gateway itself adds.
    try:
        async with (
            asyncio.timeout(timeout) as deadline,
            upstream.session.request(
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
