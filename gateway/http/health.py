"""The gateway's own endpoints, under ``/-/``, a prefix no authorization server uses.

``/-/healthz`` says the process is serving (liveness); ``/-/readyz`` says the upstream
and the storage can be reached (readiness), so an orchestrator only routes traffic to a
replica that can actually register clients.

``/-/healthz`` tells nothing and is always on the public listener.  ``/-/readyz`` names
what is down, which the world need not know: with ``admin.serve_health`` it, and every
other operational endpoint (:func:`add_operational_routes`), is served on the admin
listener only.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from multidict import CIMultiDict

from gateway.errors import OAuthError
from gateway.http.responses import json_response
from gateway.state import GATEWAY

_READY_CACHE_SECONDS = 1.0
_CHECK_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def _check_upstream(request: web.Request) -> str:
    gateway = request.app[GATEWAY]
    url = gateway.upstream.url_for(request.rel_url.with_path("/").with_query(None))
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            async with gateway.upstream.send("HEAD", url, CIMultiDict()) as response:
                return f"ok ({response.status})" if response.status < 500 else "error"
    except (OAuthError, TimeoutError):
        return "unreachable"


async def _check_storage(request: web.Request) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            await request.app[GATEWAY].storage.ping()
    except Exception:  # any driver error means "not ready"
        return "unreachable"
    return "ok"


ReadyAnswer = tuple[float, int, dict[str, object]]
#: The last readiness answer, reused for a second so that probes cannot hammer the upstream.
READY_CACHE = web.AppKey("ready_cache", dict[str, ReadyAnswer])


async def readyz(request: web.Request) -> web.Response:
    cache = request.app[READY_CACHE]
    cached = cache.get("last")
    now = time.monotonic()
    if cached and now - cached[0] < _READY_CACHE_SECONDS:
        return json_response(cached[1], cached[2])
    upstream, storage = await asyncio.gather(_check_upstream(request), _check_storage(request))
    ready = upstream.startswith("ok") and storage == "ok"
    body: dict[str, object] = {
        "status": "ready" if ready else "not_ready",
        "checks": {"upstream": upstream, "storage": storage},
    }
    status = 200 if ready else 503
    cache["last"] = (now, status, body)
    return json_response(status, body)


def add_operational_routes(app: web.Application) -> None:
    """Mount the operational endpoints that say more than "alive": readiness and its
    checks, and any endpoint of that kind added later (metrics).  Called for the public
    application, or for the admin listener's when ``admin.serve_health`` is set."""
    app[READY_CACHE] = {}
    app.router.add_get("/-/readyz", readyz)


async def not_found(request: web.Request) -> web.Response:
    return json_response(
        404, {"error": "not_found", "error_description": "no such gateway endpoint"}
    )
