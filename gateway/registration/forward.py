"""Sending judged metadata upstream and relaying the answer (RFC 7591 §3.2, RFC 7592 §2).

What goes upstream is the metadata that was judged, re-serialized (never the raw bytes),
with a correct ``Content-Length``.  The answer is read whole (bounded by
``limits.max_response_bytes``) so the audit record can note the ``client_id``; it is a small
JSON document.
"""

from __future__ import annotations

from aiohttp import web

from gateway.audit.events import AuditRecord
from gateway.http.exchange import ClientGone, client_gone
from gateway.http.forwarding import Caller, downstream_response_headers
from gateway.state import Gateway
from gateway.upstream.client import read_answer


async def forward_json(
    request: web.Request,
    gateway: Gateway,
    caller: Caller,
    record: AuditRecord,
    method: str,
    payload: bytes | None,
) -> web.Response:
    """One upstream exchange on the guarded pool; the answer is relayed as it came."""
    if client_gone(request):
        raise ClientGone
    headers = gateway.upstream_headers(request, caller)
    if payload is not None:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(payload))
    upstream = gateway.upstream
    limit = gateway.settings.limits.max_response_bytes
    async with upstream.send(method, upstream.url_for(request.rel_url), headers, payload) as answer:
        body = await read_answer(answer.content, limit, answer.content_length)
        record.note_answer(answer.status, body)
        out_headers = downstream_response_headers(answer.headers)
        out_headers["X-Request-ID"] = record.request_id
        return web.Response(
            status=answer.status, reason=answer.reason, headers=out_headers, body=body
        )
