"""``GET /-/metrics``: the application's metrics in Prometheus text format.

Served on the main listener by default, or only on the admin listener
(``metrics.listener: admin``), or not at all (``metrics.enabled: false``).  The admin token
is asked for only with ``metrics.require_admin_token``: metrics carry counts and rule ids,
never a client's name, URI or id, but who registers how often is still worth keeping
inside (docs/metrics.md says how).  A scrape writes no audit event: it decides nothing.

The registry sizes are read from storage at scrape time, at most once per
``registry.job_interval`` (the lifecycle job reads the whole registry that often anyway,
and refreshes them too when it runs in this replica).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway.errors import OAuthError
from gateway.http.forwarding import new_request_id
from gateway.http.responses import error_response
from gateway.registry.jobs import status_counts
from gateway.state import GATEWAY, Gateway
from gateway.storage import StorageError
from gateway.tokens.admin import check_admin

PATH = "/-/metrics"
#: The longest a scrape waits for the registry; after it, the last counts are served.
READ_TIMEOUT = 2.0


async def serve_metrics(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    if settings.metrics.require_admin_token:
        try:
            check_admin(settings.admin, request.headers.getall("Authorization", []))
        except OAuthError as error:
            return error_response(error, new_request_id())
    await refresh_registry(gateway)
    response = web.Response(body=gateway.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    response.headers["Cache-Control"] = "no-store"
    return response


async def refresh_registry(gateway: Gateway, *, now: float | None = None) -> None:
    """Read the registry sizes when the last reading is older than the job interval; a
    storage that fails keeps the last reading (and counts as a storage error)."""
    metrics = gateway.metrics
    now = time.time() if now is None else now
    interval = gateway.settings.registry.job_interval
    last = max(metrics.registry_read_at, metrics.registry_tried_at)
    if (last and now - last < interval) or metrics.registry_reading:
        return  # scrapes, however many, never make a struggling storage scan more often
    metrics.registry_tried_at = now
    metrics.registry_reading = True
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            entries = await gateway.registry.entries()
    except (StorageError, TimeoutError):
        return
    finally:
        metrics.registry_reading = False
    metrics.registry_counts(status_counts(entries), now)
