"""Sending judged metadata upstream and relaying the answer (RFC 7591 §3.2, RFC 7592 §2).

What goes upstream is the metadata that was judged, re-serialized (never the raw bytes),
with a correct ``Content-Length``, to the path the router put in normal form.  The answer
is read whole (bounded by ``limits.max_response_bytes``): the audit record notes the
``client_id``, and ``registration_client_uri`` (RFC 7592 §3) is made to point at the
gateway's public URL, so that a client's management calls come through the gateway even
when the upstream ignores the forwarding headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from gateway.audit.events import AuditRecord
from gateway.http.exchange import ClientGone, client_gone
from gateway.http.forwarding import Caller
from gateway.state import Gateway
from gateway.upstream.client import read_guarded


@dataclass(slots=True)
class Answer:
    """The upstream's answer, as relayed, and its JSON object when it is one."""

    response: web.Response
    document: dict[str, Any] | None


#: ``forward_json(authorization=KEEP)``: send the caller's ``Authorization`` as it came.
KEEP = object()


async def forward_json(
    request: web.Request,
    gateway: Gateway,
    caller: Caller,
    record: AuditRecord,
    method: str,
    payload: bytes | None,
    path: str,
    *,
    authorization: object = KEEP,
) -> Answer:
    """One upstream exchange on the guarded pool to ``path`` (gateway-relative).

    ``authorization``: ``KEEP`` the caller's (a registration access token, RFC 7592 §2),
    or replace it: ``None`` sends none, a string sends that ``Authorization`` value."""
    if client_gone(request):
        raise ClientGone
    headers = gateway.guarded_headers(request, caller)
    if authorization is not KEEP:
        headers.popall("Authorization", None)
        if isinstance(authorization, str):
            headers["Authorization"] = authorization
    if payload is not None:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(payload))
    upstream = gateway.upstream
    target = upstream.url_for(request.rel_url.with_path(path, encoded=True))
    limit = gateway.settings.limits.max_response_bytes
    async with upstream.send(method, target, headers, payload) as answer:
        body, out_headers = await read_guarded(answer, limit)
        record.note_answer(answer.status, body)
        out_headers["X-Request-ID"] = record.request_id
        document = _json_object(body)
        if document is not None and publish_client_uri(document, gateway):
            body = json.dumps(document).encode("utf-8")
        location = out_headers.get("Location")
        if location is not None:
            out_headers["Location"] = public_url(gateway, location)
        response = web.Response(
            status=answer.status, reason=answer.reason, headers=out_headers, body=body
        )
        return Answer(response, document)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def publish_client_uri(document: dict[str, Any], gateway: Gateway) -> bool:
    """Point ``registration_client_uri`` at the gateway; whether anything changed."""
    uri = document.get("registration_client_uri")
    if not isinstance(uri, str):
        return False
    public = public_url(gateway, uri)
    if public == uri:
        return False
    document["registration_client_uri"] = public
    return True


def public_url(gateway: Gateway, url: str) -> str:
    """``url`` (the upstream's, or already the gateway's) on the gateway's public URL: the
    path as the gateway serves it (the upstream's path prefix removed), the query kept."""
    try:
        parsed = URL(url)
    except ValueError:
        return url
    if not parsed.is_absolute():
        return url
    prefix = gateway.upstream.base.raw_path.rstrip("/")
    path = parsed.raw_path
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :] or "/"
    base = gateway.settings.public_url
    joined = base.raw_path.rstrip("/") + path
    public = URL.build(
        scheme=base.scheme,
        authority=base.raw_authority,
        path=joined,
        query_string=parsed.raw_query_string,
        encoded=True,
    )
    return str(public)
