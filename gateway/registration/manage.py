"""RFC 7592 client management through the gateway: read, update, delete.

Once registered, a client holding its registration access token can change itself with
``PUT <registration_client_uri>``: without the gateway in the way, a client registered
with an allowed redirect URI could rename itself ``claudeai`` and point its redirect URIs
anywhere.  So an update is judged exactly like a registration: the same hygiene, the same
policy (the tenant's), defaults injected the same way; RFC 7592 §2.2 makes the body the
whole client, so the whole of it is judged, and a refused update never reaches the
upstream.  Reads and deletes are forwarded as they are.  Every call writes one audit
event (``client.read``, ``client.updated``, ``client.deleted``; ``client.management`` for a
refused method) with the client id, the decision, and for an update what changed; the
registration access token travels upstream in ``Authorization`` and nowhere else.
"""

from __future__ import annotations

import time

from aiohttp import web

from gateway import rules
from gateway.audit.events import MANAGEMENT_EVENT, MANAGEMENT_EVENTS
from gateway.http.exchange import Exchange
from gateway.http.routes import Target
from gateway.oauth.body import serialize
from gateway.registration.forward import forward_json
from gateway.registration.register import enforce, judge_request
from gateway.registration.request import check_method, read_metadata
from gateway.registry.record import note_management
from gateway.registry.records import changes
from gateway.state import Gateway

ALLOWED_METHODS = ("GET", "PUT", "DELETE")
ALLOW_HEADER = "GET, PUT, DELETE, OPTIONS"


async def handle_management(
    request: web.Request, gateway: Gateway, target: Target
) -> web.StreamResponse:
    """Run one client configuration request (RFC 7592 §2) and write its one event."""
    event = MANAGEMENT_EVENTS.get(request.method, MANAGEMENT_EVENT)
    exchange = Exchange(request, gateway, event, target.tenant)
    exchange.record.client_id = target.client_id
    return await exchange.run(_manage(exchange, target))


async def _manage(exchange: Exchange, target: Target) -> web.StreamResponse:
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    policy = gateway.policies.for_tenant(target.tenant)
    record.note_policy(policy)
    check_method(
        request, ALLOWED_METHODS, "a client configuration endpoint (RFC 7592 §2)", ALLOW_HEADER
    )
    client_id = target.client_id or ""
    path = target.upstream_path or "/"
    if request.method != "PUT":
        answer = await forward_json(
            request, gateway, exchange.caller, record, request.method, None, path
        )
        record.decision, record.rule = "allowed", rules.ALLOW_MANAGEMENT.id
        record.client_id = client_id
        status = answer.response.status
        if request.method == "GET" and status == 200 and answer.document is not None:
            await gateway.clients.put(target.tenant, client_id, answer.document)
            await note_management(gateway, target.tenant, client_id, answer.document)
        elif request.method == "DELETE" and status in (200, 204):
            await gateway.clients.delete(target.tenant, client_id)
            await note_management(gateway, target.tenant, client_id, None, deleted=True)
        return answer.response
    metadata = await read_metadata(request, gateway.settings.limits)
    record.note_request(metadata)
    record.note_submitted(metadata)
    if metadata.get("client_id") != client_id:
        raise rules.MANAGEMENT_CLIENT_ID_MISMATCH.refuse(
            "an update must carry its own client_id, the one in its path (RFC 7592 §2.2)"
        )
    started = time.perf_counter()
    decision = judge_request(policy, metadata, record)
    gateway.metrics.decided("update", time.perf_counter() - started)
    before = await gateway.clients.get(target.tenant, client_id)
    record.extra["changes"] = changes(before, decision.metadata)
    enforce(decision)
    answer = await forward_json(
        request, gateway, exchange.caller, record, "PUT", serialize(decision.metadata), path
    )
    record.client_id = client_id
    if answer.response.status == 200 and answer.document is not None:
        await gateway.clients.put(target.tenant, client_id, answer.document)
        await note_management(gateway, target.tenant, client_id, answer.document)
    return answer.response
