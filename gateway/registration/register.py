"""The guarded registration endpoint (RFC 7591 §3), as named stages.

``read`` (method, content headers, bounded body, strict JSON) → ``judge`` (the pure policy
engine) → ``enforce`` (a refusal becomes its wire error) → ``forward`` (the judged metadata,
re-serialized) → ``record`` (one audit event, written by :class:`~gateway.http.exchange.Exchange`
whatever happened).  Order matters and is fixed: nothing reaches the upstream before the
policy has allowed it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.audit.events import REGISTRATION_EVENT
from gateway.http.exchange import Exchange
from gateway.oauth.body import serialize
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.judge import judge
from gateway.registration.forward import forward_json
from gateway.registration.request import check_method, read_metadata
from gateway.state import Gateway

ALLOWED_METHODS = ("POST",)
#: CORS preflights (``OPTIONS``) are answered elsewhere, so they are allowed too.
ALLOW_HEADER = "POST, OPTIONS"


async def handle_registration(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    """Run one registration request and write its one audit event."""
    exchange = Exchange(request, gateway, REGISTRATION_EVENT)
    return await exchange.run(_register(exchange))


async def _register(exchange: Exchange) -> web.StreamResponse:
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    policy = gateway.policy  # one policy for the whole request, even across a reload
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
    return await forward_json(request, gateway, exchange.caller, record, "POST", payload)


def enforce(decision: Decision) -> None:
    """Raise the refusal of a denied decision; report-only mode will hook in here."""
    if decision.error is not None:
        raise decision.error
