"""The guarded registration endpoint: hygiene, decision, forward, audit (RFC 7591 §3).

Order matters and is fixed: the request is read and checked (content type, encoding,
size, one JSON object without duplicate keys, RFC types), judged by the pure policy
engine, and only then forwarded — as the re-serialized metadata that was judged, never
the raw bytes.  Whatever happens, including upstream faults and clients that hang up,
exactly one audit event is written, in a ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

from gateway.audit import RegistrationRecord, log
from gateway.errors import (
    BadGateway,
    InvalidRequest,
    MethodNotAllowed,
    OAuthError,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from gateway.forwarding import (
    downstream_response_headers,
    request_id,
)
from gateway.metadata import parse_body, serialize
from gateway.policy.decision import RequestContext
from gateway.policy.engine import decide
from gateway.proxy import error_response, internal_error
from gateway.runtime import Gateway

ALLOW = "POST, OPTIONS"

RULE_METHOD = "request.method"
RULE_CONTENT_TYPE = "request.content_type"
RULE_CONTENT_ENCODING = "request.content_encoding"
RULE_TOO_LARGE = "request.too_large"
RULE_BODY_TIMEOUT = "request.timeout"
RULE_FRAMING = "request.bad_framing"
RULE_DISCONNECTED = "client.disconnected"
RULE_RESPONSE_TOO_LARGE = "upstream.response_too_large"


class ClientGone(Exception):
    """The client closed the connection before the gateway could answer."""


def check_content_headers(headers: CIMultiDictProxy[str]) -> None:
    """``Content-Type: application/json`` (UTF-8) and no content coding (RFC 7591 §3.1)."""
    types = headers.getall("Content-Type", [])
    if len(types) != 1:
        raise UnsupportedMediaType(
            "Content-Type must be application/json (RFC 7591 §3.1)", rule=RULE_CONTENT_TYPE
        )
    media, *params = types[0].split(";")
    if media.strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {media.strip()[:80]!r} (RFC 7591 §3.1)",
            rule=RULE_CONTENT_TYPE,
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(
                "a JSON body must be UTF-8 (RFC 8259 §8.1)", rule=RULE_CONTENT_TYPE
            )
    if "Content-Encoding" in headers:
        raise UnsupportedMediaType(
            "Content-Encoding is not accepted on the registration endpoint; send the JSON "
            "body uncompressed",
            rule=RULE_CONTENT_ENCODING,
        )


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes (chunked bodies included) or
    taking longer than ``timeout`` seconds: a sender that stalls, or whose chunked framing
    breaks mid-body, must not hold a handler and its audit event open forever."""
    try:
        async with asyncio.timeout(timeout):
            return await _read_body(request, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout:g} seconds", rule=RULE_BODY_TIMEOUT
        ) from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(
        f"the request body is larger than {limit} bytes", rule=RULE_TOO_LARGE
    )
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except HttpProcessingError:
        raise InvalidRequest(
            "the request body's framing is invalid (RFC 9112 §7.1)", rule=RULE_FRAMING
        ) from None
    except (ConnectionError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise ClientGone from exc
    if declared is not None and size < declared:
        raise ClientGone
    return b"".join(chunks)


async def read_answer(
    stream: aiohttp.StreamReader, limit: int, declared: int | None = None
) -> bytes:
    """The upstream's whole answer, at most ``limit`` bytes, refused up front when its
    ``Content-Length`` already says more (``read(n)`` alone may stop at whatever happens
    to be buffered)."""
    too_large = BadGateway(
        "the authorization server's answer was too large", rule=RULE_RESPONSE_TOO_LARGE
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


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def summarize_answer(body: bytes, record: RegistrationRecord) -> None:
    """Note the upstream's ``client_id`` (or ``error`` code); nothing else is kept,
    because the same body carries the client secret and registration access token."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return
    if not isinstance(answer, dict):
        return
    client_id = answer.get("client_id")
    if isinstance(client_id, str):
        record.client_id = client_id[:500]
    error = answer.get("error")
    if isinstance(error, str):
        record.upstream_error = error[:100]


async def _register(
    request: web.Request, gateway: Gateway, record: RegistrationRecord
) -> web.StreamResponse:
    if request.method != "POST":
        raise MethodNotAllowed(
            f"{request.method} is not allowed on the registration endpoint; "
            "register with POST (RFC 7591 §3.1)",
            rule=RULE_METHOD,
            allow=ALLOW,
        )
    check_content_headers(request.headers)
    limits = gateway.settings.limits
    body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
    metadata = parse_body(body)
    record.note_metadata(metadata)

    policy = gateway.policy
    record.policy = policy.source
    decision = decide(
        policy,
        metadata,
        RequestContext(client_ip=record.client_ip, user_agent=record.user_agent),
    )
    record.rule = decision.rule
    record.matched = list(decision.matched)
    record.vendor = decision.vendor
    record.dropped_redirect_uris = list(decision.dropped_redirect_uris)
    if decision.error is not None:
        raise decision.error
    payload = serialize(decision.metadata)
    record.decision = "allowed"
    if _client_gone(request):
        raise ClientGone

    headers = gateway.upstream_headers(request, record.request_id)
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(payload))
    upstream = gateway.upstream
    limit = gateway.settings.limits.max_response_bytes
    async with upstream.send("POST", upstream.url_for(request.rel_url), headers, payload) as answer:
        record.upstream_status = answer.status
        answer_body = await read_answer(answer.content, limit, answer.content_length)
        summarize_answer(answer_body, record)
        out_headers = downstream_response_headers(answer.headers)
        out_headers["X-Request-ID"] = record.request_id
        return web.Response(
            status=answer.status, reason=answer.reason, headers=out_headers, body=answer_body
        )


async def handle_registration(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    """Run one registration request and write its one audit event."""
    started = time.perf_counter()
    record = RegistrationRecord(
        request_id=request_id(request.headers),
        client_ip=gateway.trusted.client_ip(request.remote, request.headers),
        user_agent=request.headers.get("User-Agent"),
        method=request.method,
        path=request.rel_url.raw_path,
    )
    try:
        response = await _register(request, gateway, record)
        record.status = response.status
        return response
    except OAuthError as error:
        record.decision = "denied" if error.status < 500 else "error"
        record.rule = error.rule
        record.error = error.error
        record.error_description = error.description
        record.status = error.status
        return error_response(error, record.request_id)
    except (ClientGone, asyncio.CancelledError) as gone:
        record.decision = "error"
        record.rule = RULE_DISCONNECTED
        record.error_description = "the client closed the connection"
        record.client_disconnected = True
        if isinstance(gone, asyncio.CancelledError):
            raise
        # Nobody is left to read this; it only keeps aiohttp from logging a 500.
        return error_response(
            InvalidRequest(record.error_description, rule=RULE_DISCONNECTED), record.request_id
        )
    except Exception:
        log().exception("registration_failed", request_id=record.request_id)
        error = internal_error()
        record.decision = "error"
        record.rule = error.rule
        record.error = error.error
        record.error_description = error.description
        record.status = error.status
        return error_response(error, record.request_id)
    finally:
        record.client_disconnected = record.client_disconnected or _client_gone(request)
        record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        gateway.audit.registration(record)
