"""Serving the authorization server's metadata through the gateway (RFC 8414 §3,
OpenID Connect Discovery 1.0 §4).

Clients learn the registration endpoint from these documents, so the gateway serves them
itself: fetched from the upstream (the guarded pool), parsed, ``registration_endpoint``
pointed at the gateway's guarded path of that tenant, or removed when the tenant's
policy disables registration, and everything else left as the upstream wrote it.  A
document that is not a JSON object, or an answer other than 200, is relayed as it came.
"""

from __future__ import annotations

import json

from aiohttp import web
from multidict import CIMultiDict

from gateway import rules
from gateway.audit.logging import log
from gateway.errors import OAuthError
from gateway.http.forwarding import Caller
from gateway.http.responses import error_response
from gateway.http.routes import Target
from gateway.policy.model import Mode, RuleGroup
from gateway.state import Gateway
from gateway.upstream.client import read_guarded
from gateway.upstream.discovery import publish_metadata

#: Headers that decide what the upstream writes into the document.
_KEY_HEADERS = ("X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "Host")


async def serve_metadata(
    request: web.Request, gateway: Gateway, target: Target
) -> web.StreamResponse:
    """The tenant's metadata document as clients of the gateway must see it."""
    caller = gateway.identify(request)
    try:
        return await _serve(request, gateway, target, caller)
    except OAuthError as error:  # the upstream could not be reached, or answered too much
        return error_response(error, caller.request_id)
    except Exception:
        log().exception("metadata_failed", request_id=caller.request_id)
        return error_response(rules.internal_error(), caller.request_id)


async def _serve(
    request: web.Request, gateway: Gateway, target: Target, caller: Caller
) -> web.StreamResponse:
    headers = gateway.guarded_headers(request, caller)
    path = target.upstream_path or request.rel_url.raw_path
    rel = request.rel_url.with_path(path, encoded=True)
    key = (rel.raw_path_qs, *(headers.get(h, "") for h in _KEY_HEADERS))
    cache = gateway.metadata_cache
    cached = cache.get(key)
    if cached is None:
        upstream = gateway.upstream
        async with upstream.send("GET", upstream.url_for(rel), headers) as answer:
            body, out = await read_guarded(answer, gateway.settings.limits.max_response_bytes)
            out["X-Request-ID"] = caller.request_id
            try:
                document = json.loads(body) if answer.status == 200 else None
            except (ValueError, RecursionError):
                document = None
            if not isinstance(document, dict):
                return web.Response(
                    status=answer.status, reason=answer.reason, headers=out, body=body
                )
            cached = cache.entry(answer.status, out, document)
            cache.put(key, cached)
    policy = gateway.policies.for_tenant(target.tenant)
    published = publish_metadata(
        cached.document,
        _public(gateway, target.registration_path),
        # Under report-only a disabled mode only reports: registrations still go through.
        registration_open=policy.mode is not Mode.DISABLED or RuleGroup.MODE in policy.report_only,
        cimd=gateway.settings.cimd.enabled,
    )
    out_headers = CIMultiDict(cached.headers)  # repeated headers kept one by one
    out_headers["X-Request-ID"] = caller.request_id
    body = json.dumps(published).encode("utf-8")
    if request.method == "HEAD":
        out_headers["Content-Length"] = str(len(body))
        return web.Response(status=cached.status, headers=out_headers)
    return web.Response(status=cached.status, headers=out_headers, body=body)


def _public(gateway: Gateway, path: str | None) -> str | None:
    if path is None:
        return None
    base = gateway.settings.public_url
    return str(base.with_path(base.raw_path.rstrip("/") + path, encoded=True))
