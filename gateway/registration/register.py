"""The guarded registration endpoint (RFC 7591 §3), as named stages.

``read`` (method, content headers, bounded body, strict JSON) → ``judge`` (the pure policy
engine, with the tenant's policy) → ``enforce`` (a refusal becomes its wire error) →
``forward`` (the judged metadata, re-serialized, to the normal-form path) → ``record`` (one
audit event, written by :class:`~gateway.http.exchange.Exchange` whatever happened).  Order
matters and is fixed: nothing reaches the upstream before the policy has allowed it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.audit.events import REGISTRATION_EVENT
from gateway.http.exchange import Exchange
from gateway.http.routes import Target
from gateway.oauth.body import serialize
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.judge import judge
from gateway.registration.forward import forward_json
from gateway.registration.request import check_method, read_metadata
from gateway.state import Gateway

ALLOWED_METHODS = ("POST",)
#: CORS preflights (``OPTIONS``) are answered elsewhere, so they are allowed too.
ALLOW_HEADER = "POST, OPTIONS"


async def handle_registration(
    request: web.Request, gateway: Gateway, target: Target
) -> web.StreamResponse:
    """Run one registration request and write its one audit event."""
    exchange = Exchange(request, gateway, REGISTRATION_EVENT, target.tenant)
    return await exchange.run(_register(exchange, target))


async def _register(exchange: Exchange, target: Target) -> web.StreamResponse:
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    policy = gateway.policies.for_tenant(target.tenant)  # one policy for the whole request
    record.note_policy(policy)
    check_method(
        request, ALLOWED_METHODS, "the registration endpoint (RFC 7591 §3.1)", ALLOW_HEADER
    )
    metadata = await read_metadata(request, gateway.settings.limits)
    record.note_request(metadata)
    decision = judge(policy, metadata, RequestContext(client_ip=record.client_ip))
    record.note_decision(decision)
    enforce(decision)
    payload = serialize(decision.metadata)
    answer = await forward_json(
        request, gateway, exchange.caller, record, "POST", payload, target.upstream_path or "/"
    )
    if answer.response.status == 201 and record.client_id and answer.document is not None:
        await gateway.clients.put(target.tenant, record.client_id, answer.document)
    return answer.response


def enforce(decision: Decision) -> None:
    """Raise the refusal of a denied decision; report-only mode will hook in here."""
    if decision.error is not None:
        raise decision.error
