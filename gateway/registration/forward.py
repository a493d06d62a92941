"""Sending judged metadata upstream and relaying the answer (RFC 7591 §3.2, RFC 7592 §2).

What goes upstream is the metadata that was judged, re-serialized (never the raw bytes),
with a correct ``Content-Length``, to the path the router put in normal form.  The answer
is read whole (bounded by ``limits.max_response_bytes``): the audit record notes the
``client_id``, and ``registration_client_uri`` (RFC 7592 §3) is made to point at the
gateway's public URL, so that a client's management calls come through the gateway even
when the upstream ignores the forwarding headers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from gateway import fastjson
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
        parsed = parse_answer(body)
        record.note_answer(answer.status, body, parsed)
        out_headers["X-Request-ID"] = record.request_id
        document = parsed if isinstance(parsed, dict) else None
        if document is not None and publish_client_uri(document, gateway):
            body = fastjson.dumps(document)
        location = out_headers.get("Location")
        if location is not None:
            out_headers["Location"] = public_url(gateway, location)
        response = web.Response(
            status=answer.status, reason=answer.reason, headers=out_headers, body=body
        )
        return Answer(response, document)


def parse_answer(body: bytes) -> object:
    """An upstream answer's JSON (parsed once, for the audit record and the relay), or
    ``None`` when it is not JSON."""
    try:
        return fastjson.loads(body)
    except (ValueError, RecursionError):
        return None


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
    for base in (gateway.upstream.base, gateway.settings.public_url):
        path = _plain_tail(url, _origin(base))
        if path is not None:
            # The common case, without parsing: a plain path on the upstream's or the
            # gateway's origin (what the parse below gives for it, as the tests check).
            return _origin_and_path(gateway.settings.public_url) + _served_path(gateway, path)
    return parsed_public_url(gateway, url)


def plain_path_below(url: str, base: URL) -> str | None:
    """The rest of ``url`` when it is ``base`` followed by a plain path (one that parsing
    leaves as it is, :data:`_PLAIN_PATH`), else ``None``: then only parsing can say."""
    return _plain_tail(url, _origin_and_path(base))


def _plain_tail(url: str, prefix: str) -> str | None:
    if url.startswith(prefix) and _PLAIN_PATH.fullmatch(url, len(prefix)):
        return url[len(prefix) :]
    return None


def parsed_public_url(gateway: Gateway, url: str) -> str:
    """:func:`public_url` for any URL: parsed, then rebuilt on the public URL."""
    try:
        parsed = URL(url)
    except ValueError:
        return url
    if not parsed.is_absolute():
        return url
    base = gateway.settings.public_url
    public = URL.build(
        scheme=base.scheme,
        authority=base.raw_authority,
        path=base.raw_path.rstrip("/") + _served_path(gateway, parsed.raw_path),
        query_string=parsed.raw_query_string,
        encoded=True,
    )
    return str(public)


def _served_path(gateway: Gateway, path: str) -> str:
    """An upstream path as the gateway serves it: the upstream's path prefix removed (an
    upstream that honours ``X-Forwarded-Host`` still puts its own prefix in its URLs)."""
    prefix = gateway.upstream.base.raw_path.rstrip("/")
    if prefix and _below(path, prefix):
        return path[len(prefix) :] or "/"
    return path


def _below(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


#: A path that parsing leaves as it is: unreserved characters and single slashes, no dot
#: segment, no query or fragment (RFC 3986 §2.3, §5.2.4).
_PLAIN_PATH = re.compile(r"(?:/(?!\.)[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


@functools.lru_cache(maxsize=16)
def _origin(base: URL) -> str:
    """``scheme://authority`` of a base URL."""
    return f"{base.scheme}://{base.raw_authority}"


@functools.lru_cache(maxsize=16)
def _origin_and_path(base: URL) -> str:
    """``scheme://authority/path`` of a base URL, without its trailing slash."""
    return f"{base.scheme}://{base.raw_authority}{base.raw_path.rstrip('/')}"
