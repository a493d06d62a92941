"""``create_app(settings, policy)``: wiring only.

One catch-all route sends registration requests to the guarded handler and everything
else to the transparent proxy; the gateway's own endpoints live under ``/-/``.
Resources (the upstream client, storage, the audit sink) are opened and closed in
``cleanup_ctx``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.audit import AuditLog
from gateway.discovery import discover_registration_paths
from gateway.errors import InvalidRequest
from gateway.forwarding import TrustedProxies, request_id
from gateway.health import READY_CACHE, healthz, not_found, readyz
from gateway.passthrough import pass_through
from gateway.paths import PathMatcher
from gateway.policy.model import Policy
from gateway.proxy import UpstreamClient, error_response
from gateway.registration import handle_registration
from gateway.runtime import GATEWAY, Gateway
from gateway.settings import Settings
from gateway.storage import open_storage

RULE_TARGET = "request.target"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors aiohttp's router raises itself (a target such as ``OPTIONS *`` that no route
    can match) answer the same JSON as every other refusal, never text or HTML."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:  # every origin-form path has a route: this target is not one
            error = InvalidRequest(
                "the request target must be an absolute path (RFC 9112 §3.2)", rule=RULE_TARGET
            )
            return error_response(error, request_id(request.headers))
        error = InvalidRequest(exc.reason or "the request cannot be served", rule=RULE_TARGET)
        response = error_response(error, request_id(request.headers))
        response.set_status(exc.status)
        return response


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Registration paths (however spelled) are guarded; CORS preflights and all other
    paths pass through."""
    gateway = request.app[GATEWAY]
    if request.method != "OPTIONS" and request.rel_url.raw_path in gateway.registration_paths:
        return await handle_registration(request, gateway)
    return await pass_through(request, gateway)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    gateway = app[GATEWAY]
    await gateway.upstream.start()
    try:
        if not gateway.registration_paths:
            paths = await discover_registration_paths(
                gateway.upstream, gateway.settings.upstream.discovery_timeout
            )
            gateway.registration_paths = PathMatcher(paths)
        yield
    finally:
        await gateway.upstream.close()
        await gateway.storage.close()
        gateway.audit.close()


def create_app(
    settings: Settings, policy: Policy, *, audit: AuditLog | None = None
) -> web.Application:
    """Build the gateway application; nothing touches the network until it starts."""
    app = web.Application(middlewares=[json_errors])
    app[GATEWAY] = Gateway(
        settings=settings,
        policy=policy,
        upstream=UpstreamClient(settings.upstream),
        audit=audit or AuditLog(settings.audit.sink),
        storage=open_storage(settings.storage),
        trusted=TrustedProxies(settings.trusted_proxies),
        registration_paths=PathMatcher(settings.upstream.registration_paths or ()),
    )
    app[READY_CACHE] = {}
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/-/healthz", healthz)
    app.router.add_get("/-/readyz", readyz)
    app.router.add_route("*", "/-/{tail:.*}", not_found)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
