"""Reading a registration (or update) request: method, content headers, the bounded body.

RFC 7591 §3.1: the client sends ``application/json`` with POST.  Before a byte of the body
is judged the gateway insists on exactly that: one ``Content-Type`` that is JSON in UTF-8
(RFC 8259 §8.1), no content coding (a compressed body would be judged as one thing and
inflated upstream into another), a size limit that also holds for chunked bodies, and a
deadline, so a sender that stalls or whose chunked framing breaks cannot hold a handler and
its audit event open.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

from gateway import rules
from gateway.config.settings import Limits
from gateway.errors import OAuthError
from gateway.http.exchange import ClientGone
from gateway.oauth.body import parse_body


def check_method(
    request: web.Request, allowed: tuple[str, ...], what: str, allow: str | None = None
) -> None:
    """405 with ``Allow`` (default: ``allowed``) for any other method (RFC 9110 §15.5.6)."""
    if request.method not in allowed:
        raise rules.REQUEST_METHOD.refuse(
            f"{request.method} is not allowed on {what}; use {' or '.join(allowed)}",
            allow=allow or ", ".join(allowed),
        )


def check_content_headers(headers: CIMultiDictProxy[str]) -> None:
    """``Content-Type: application/json`` (UTF-8) and no content coding (RFC 7591 §3.1)."""
    types = headers.getall("Content-Type", [])
    if len(types) != 1:
        raise rules.REQUEST_CONTENT_TYPE.refuse(
            "Content-Type must be application/json (RFC 7591 §3.1)"
        )
    media, *params = types[0].split(";")
    if media.strip().lower() != "application/json":
        raise rules.REQUEST_CONTENT_TYPE.refuse(
            f"Content-Type must be application/json, not '{media.strip()[:80]}' (RFC 7591 §3.1)"
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise rules.REQUEST_CONTENT_TYPE.refuse("a JSON body must be UTF-8 (RFC 8259 §8.1)")
    if "Content-Encoding" in headers:
        raise rules.REQUEST_CONTENT_ENCODING.refuse(
            "Content-Encoding is not accepted here; send the JSON body uncompressed"
        )


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes (chunked bodies included) or
    taking longer than ``timeout`` seconds."""
    content = request.content
    declared = request.content_length
    if declared is not None and declared <= limit and content.is_eof():
        # The whole body has arrived (the common case: it came with the headers), so
        # there is nothing to time: no timer is armed for it.
        return await _read_body(request, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read_body(request, limit)
    except TimeoutError:
        raise rules.REQUEST_TIMEOUT.refuse(
            f"the request body did not arrive within {timeout:g} seconds"
        ) from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except HttpProcessingError:
        raise rules.REQUEST_BAD_FRAMING.refuse(
            "the request body's framing is invalid (RFC 9112 §7.1)"
        ) from None
    except (ConnectionError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise ClientGone from exc
    if declared is not None and size < declared:
        raise ClientGone
    return b"".join(chunks)


def _too_large(limit: int) -> OAuthError:
    return rules.REQUEST_TOO_LARGE.refuse(f"the request body is larger than {limit} bytes")


async def read_metadata(request: web.Request, limits: Limits) -> dict[str, Any]:
    """Content headers, then the bounded body, then strict JSON into client metadata."""
    check_content_headers(request.headers)
    body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
    return parse_body(body)
