"""The authorization and token endpoints: a registered client's status decides first.

These requests pass through untouched unless the client they name is one the gateway
registered and may not be used: pending approval, rejected, or deleted.  Then the request
never reaches the upstream: an authorization request gets an HTML page saying why (never a
redirect to the client's redirect URI: a client nobody approved must not be able to send
users anywhere), a token request (or pushed authorization, device authorization) a 401
``invalid_client`` (RFC 6749 §5.2).  A refusal writes one audit event,
``client.blocked``; allowed requests write none (they are pass-through traffic).

Which client a request names: every ``client_id`` parameter (query and, for POST bodies,
body), the user of HTTP Basic authentication (RFC 6749 §2.3.1, form-decoded), and the
``sub`` of a ``client_assertion`` (RFC 7523 §3, read but not verified: the upstream
verifies it; here it can only cause a refusal).  Every one of them is checked, so repeating
a parameter does not smuggle a pending client past the gate.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qs, unquote_plus

from aiohttp import web

from gateway import rules
from gateway.cimd import bridge as cimd
from gateway.cimd.bridge import is_url_client_id
from gateway.errors import OAuthError
from gateway.http.exchange import Exchange
from gateway.http.pages import wants_json
from gateway.http.routes import Kind, Target
from gateway.policy.model import OnStorageError
from gateway.registry.entry import Status
from gateway.state import Gateway
from gateway.storage import StorageError
from gateway.upstream.passthrough import SMALL_BODY, pass_through, read_small_body

EVENT = "client.blocked"
#: Client ids longer than this are not looked up (no registry holds them).
MAX_CLIENT_ID = 512
MAX_CANDIDATES = 8

#: The rule refusing each blocked status, and why (the audit event's description).
_REFUSALS = {
    Status.PENDING: (rules.CLIENT_PENDING, "the client awaits approval by an administrator"),
    Status.REJECTED: (rules.CLIENT_REJECTED, "the client was rejected by an administrator"),
    Status.DELETED: (
        rules.CLIENT_DELETED,
        "the client is no longer registered; register again",
    ),
}


async def guard_use(request: web.Request, gateway: Gateway, target: Target) -> web.StreamResponse:
    body: bytes | None = None
    if _is_form(request):
        try:
            body = await read_small_body(request, gateway.settings.limits.passthrough_body_timeout)
        except OAuthError as error:
            return await _refuse(request, gateway, target, None, error)
        if body is not None and not request.content.at_eof():
            error = rules.REQUEST_TOO_LARGE.refuse(
                f"a form body here is at most {SMALL_BODY} bytes"
            )
            return await _refuse(request, gateway, target, None, error)
    candidates = client_ids(request, body)
    urls = [c for c in candidates if is_url_client_id(c)]
    if urls:
        if len(candidates) > 1:
            error = rules.REQUEST_MALFORMED.refuse(
                "a request naming a metadata document URL as client_id names no other client"
            )
            return await _refuse(request, gateway, target, None, error)
        return await cimd.handle(request, gateway, target, urls[0], body)
    if len(candidates) > MAX_CANDIDATES:
        error = rules.REQUEST_MALFORMED.refuse(
            f"the request names more than {MAX_CANDIDATES} different client ids"
        )
        return await _refuse(request, gateway, target, None, error)
    for client_id in candidates:
        try:
            status = await gateway.gate.status(target.tenant, client_id)
        except StorageError:
            policy = gateway.policies.for_tenant(target.tenant)
            if policy.approval.required and policy.on_storage_error is OnStorageError.FAIL_CLOSED:
                error = rules.storage_unavailable()
                return await _refuse(request, gateway, target, client_id, error)
            continue
        if status is not None and status is not Status.ACTIVE:
            rule, why = _REFUSALS[status]
            return await _refuse(request, gateway, target, client_id, rule.refuse(why))
    return await pass_through(request, gateway, body=body)


def _is_form(request: web.Request) -> bool:
    """Whether the body must be read for client ids: any POST body, whatever its
    ``Content-Type`` claims (an upstream lenient about it must not be a way around)."""
    return request.method == "POST" and request.body_exists


def client_ids(request: web.Request, body: bytes | None) -> list[str]:
    """Every client id the request names, each once, in order of appearance."""
    found: list[str] = list(request.rel_url.query.getall("client_id", []))
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        form = parse_qs(text, keep_blank_values=True)
        if text.lstrip().startswith("{"):
            form = _json_form(text) or form
        found += form.get("client_id", [])
        found += [s for s in map(_assertion_subject, form.get("client_assertion", [])) if s]
    basic = _basic_user(request.headers.getall("Authorization", []))
    if basic:
        found.append(basic)
    return list(dict.fromkeys(c for c in found if c and len(c) <= MAX_CLIENT_ID))


def _json_form(text: str) -> dict[str, list[str]] | None:
    """A JSON object body read as parameters (string values only)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {k: [v] for k, v in value.items() if isinstance(v, str)}


def _basic_user(values: list[str]) -> str | None:
    for value in values:
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "basic":
            continue
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return unquote_plus(decoded.split(":", 1)[0])
    return None


def _assertion_subject(assertion: str) -> str | None:
    parts = assertion.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


async def _refuse(
    request: web.Request,
    gateway: Gateway,
    target: Target,
    client_id: str | None,
    error: OAuthError,
) -> web.StreamResponse:
    exchange = Exchange(request, gateway, EVENT, target.tenant)
    exchange.record.client_id = client_id
    exchange.record.note_policy(gateway.policies.for_tenant(target.tenant))

    async def refusal() -> web.StreamResponse:
        raise error

    if target.kind is Kind.AUTHORIZE:
        # A browser is looking: a page (403 for a blocked client), or JSON when asked.
        exchange.record.extra["endpoint"] = "authorization"
        return await exchange.run_page(refusal(), wants_json=wants_json(request))
    exchange.record.extra["endpoint"] = "token"
    return await exchange.run(refusal())
