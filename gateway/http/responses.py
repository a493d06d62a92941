"""Responses the gateway makes itself: wire errors and small JSON documents.

Every one names the product in ``Server`` without a version (aiohttp would otherwise
announce ``Python/3.x aiohttp/3.x``: a free fingerprint for anyone matching advisories),
carries the request id, and is never cached (RFC 7591 §3.2.2, RFC 6749 §5.1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from gateway.errors import NO_STORE_HEADERS, OAuthError

#: The ``Server`` header of every response the gateway sends, its own or relayed.
SERVER = "dcr-gateway"


def error_response(error: OAuthError, request_id: str) -> web.Response:
    """Render a wire error (RFC 7591 §3.2.2 body, ``no-store``)."""
    headers = error.headers()
    headers["X-Request-ID"] = request_id
    headers["Server"] = SERVER
    return web.Response(status=error.status, body=error.body(), headers=headers)


def json_response(
    status: int,
    body: Mapping[str, object],
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON document of the gateway's own (health, admin), never cached."""
    out = {**NO_STORE_HEADERS, "Server": SERVER, **(headers or {})}
    if request_id is not None:
        out["X-Request-ID"] = request_id
    return web.Response(status=status, body=json.dumps(body).encode(), headers=out)
