"""The guarded registration endpoint (RFC 7591 §3), as named stages.

``read`` (method, content headers, bounded body, strict JSON) → ``identify`` and ``admit`` (the
initial access token, when one is sent or required) → ``judge`` (the pure policy engine:
the tenant's policy, or the token's; under report-only, a reported refusal is judged again
by the policy's enforced view, :mod:`gateway.policy.report_only`) → ``limit`` (the
policy's rate limits, one atomic storage step) → ``enforce`` (a refusal becomes its wire
error) → ``reserve`` (the token's use) → ``forward`` (the judged metadata, re-serialized,
to the normal-form path, with the gateway's own upstream credentials) → ``record`` (one
audit event, written by :class:`~gateway.http.exchange.Exchange` whatever happened).  Order
matters and is fixed:
nothing reaches the upstream before the policy and the limits have allowed it, and what a
request reserved (a registrations unit, a token use) is given back unless the upstream
created the client or may have.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway import rules
from gateway.audit.events import REGISTRATION_EVENT, AuditRecord
from gateway.http.exchange import Exchange
from gateway.http.routes import Target
from gateway.oauth.body import serialize
from gateway.policy.decision import Decision, RequestContext
from gateway.policy.judge import judge
from gateway.policy.model import OnStorageError, Policy
from gateway.policy.report_only import resolve
from gateway.ratelimit.keys import RateFacts, vendor_bucket
from gateway.registration.forward import forward_json
from gateway.registration.request import check_method, read_metadata
from gateway.registry.quotas import QuotaHold
from gateway.registry.quotas import reserve as reserve_quota
from gateway.registry.record import record_client
from gateway.state import Gateway
from gateway.storage import StorageError
from gateway.tokens.check import Presented, admit, identify, release_use, reserve_use

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
    policies = gateway.policies  # read once: a reload swaps it, this request keeps its own
    policy = policies.for_tenant(target.tenant)
    scope = policies.scope(target.tenant)
    record.note_policy(policy)
    check_method(
        request, ALLOWED_METHODS, "the registration endpoint (RFC 7591 §3.1)", ALLOW_HEADER
    )
    metadata = await read_metadata(request, gateway.settings.limits)
    record.note_request(metadata)
    record.note_submitted(metadata)
    token = await identify(
        request.headers.getall("Authorization", []),
        policy,
        scope=scope,
        tenant=target.tenant,
        storage=gateway.storage,
    )
    judging = policy
    if token is not None:
        record.initial_access_token_name = token.name
        await admit(token, gateway.storage)
        if token.policy is not None:
            judging = token.policy
            record.note_policy(judging)
    started = time.perf_counter()
    decision = judge_request(judging, metadata, record)
    gateway.metrics.decided("registration", time.perf_counter() - started)
    facts = RateFacts(
        client_ip=record.client_ip,
        software_id=record.software_id,
        vendor=decision.vendor,
        client_name=record.client_name,
        token_name=token.name if token is not None else None,
        tenant=target.tenant,
    )
    reservation, storage_note = await gateway.limiter.acquire(
        policy, facts, scope=scope, registering=decision.allowed
    )
    record.storage_error = storage_note
    use: Presented | None = None
    hold: QuotaHold | None = None
    forwarding = False
    vendor_key = vendor_bucket(decision.vendor, record.client_name)
    try:
        enforce(decision)
        if token is not None:
            await reserve_use(token, gateway.storage)
            use = token
        hold = await reserve_registration_quota(gateway, policy, target.tenant, vendor_key, record)
        payload = serialize(decision.metadata)
        forwarding = True
        answer = await forward_json(
            request,
            gateway,
            exchange.caller,
            record,
            "POST",
            payload,
            target.upstream_path or "/",
            authorization=upstream_authorization(gateway),
        )
    finally:
        # Given back when the upstream surely did not create the client: it answered
        # otherwise, or the request never left.  Unknown outcomes keep what they took, and
        # so does a client the upstream created though relaying its answer then failed.
        created = _upstream_created(record)
        if not created and (not forwarding or record.upstream_status is not None):
            await reservation.release()
            if use is not None:
                await release_use(use, gateway.storage)
            if hold is not None:
                with contextlib.suppress(StorageError):
                    await hold.release()
    if created and answer.document is not None and record.storage_error is None:
        # (After a storage failure in this request, fail_open: the client is not recorded
        # rather than the answer waiting on storage once more.)
        await gateway.clients.put(target.tenant, record.client_id or "", answer.document)
        await record_client(
            gateway,
            policy,
            target.tenant,
            answer.document,
            record,
            vendor_key=vendor_key,
            managed=decision.vendor is not None,
            token_name=token.name if token is not None else None,
        )
    return answer.response


def _upstream_created(record: AuditRecord) -> bool:
    """Whether the upstream answered 2xx with a ``client_id`` (RFC 7591 §3.2.1)."""
    status = record.upstream_status
    return status is not None and 200 <= status < 300 and record.client_id is not None


async def reserve_registration_quota(
    gateway: Gateway, policy: Policy, tenant: str | None, vendor_key: str, record: AuditRecord
) -> QuotaHold | None:
    """The quota unit of this registration; storage errors follow ``on_storage_error``."""
    try:
        return await reserve_quota(gateway, policy.quotas, tenant, vendor_key, record, time.time())
    except StorageError:
        if policy.on_storage_error is OnStorageError.FAIL_OPEN:
            record.storage_error = "fail_open"
            return None
        raise rules.storage_unavailable() from None


def upstream_authorization(gateway: Gateway) -> str | None:
    """What registrations present upstream: the gateway's own initial access token, when
    configured; never the caller's (it was the gateway's to check, RFC 7591 §3)."""
    token = gateway.settings.upstream.initial_access_token
    return None if token is None else f"Bearer {token.value}"


def judge_request(policy: Policy, metadata: dict[str, Any], record: AuditRecord) -> Decision:
    """The decision to act on, noted in ``record``: the policy's, or under report-only,
    for a refusal it only reports, the enforced view's (``decision: would_deny``).
    ``metadata`` is what :func:`read_metadata` parsed, its types already checked."""
    context = RequestContext(client_ip=record.client_ip)
    decision = judge(policy, metadata, context, typed=True)
    resolution = resolve(policy, decision, lambda v: judge(v, metadata, context, typed=True))
    record.note_resolution(resolution)
    return resolution.acting


def report_or_refuse(
    record: AuditRecord,
    policy: Policy,
    decision: Decision,
    rejudge: Callable[[Policy], Decision],
) -> Decision:
    """For handlers with nothing between a decision and its enforcement (CIMD): resolve
    report-only (``rejudge`` judges the same input by another policy), note it in
    ``record``, raise the refusal if one still refuses, else return what to act on."""
    resolution = resolve(policy, decision, rejudge)
    record.note_resolution(resolution)
    enforce(resolution.acting)
    return resolution.acting


def enforce(decision: Decision) -> None:
    """Raise the refusal of a denied decision (a reported one was resolved before)."""
    if decision.error is not None:
        raise decision.error
