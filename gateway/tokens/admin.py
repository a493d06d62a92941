"""The admin API for initial access tokens: issue, list, revoke.

``POST /-/admin/initial-access-tokens`` ``{"name", "expires_in", "max_uses", "tenant"}``
issues a token and shows it once; ``GET`` lists them (name, expiry, uses; never a secret
or a digest); ``DELETE /-/admin/initial-access-tokens/<name>`` revokes one.  Every call
needs ``Authorization: Bearer <admin token>``, the token in the environment variable
``admin.token_env`` names, compared in constant time over its SHA-256; without one
configured, every call is refused.  Each call writes one audit event
(``admin.initial_access_token``) naming the token, never its secret.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import rules
from gateway.config.settings import Admin
from gateway.errors import OAuthError
from gateway.http.exchange import Exchange
from gateway.http.responses import json_response
from gateway.oauth.body import parse_body
from gateway.policy.controls import as_name
from gateway.registration.request import check_content_headers, read_body
from gateway.state import GATEWAY
from gateway.storage import StorageError
from gateway.tokens.issued import IssuedTokens
from gateway.tokens.secrets import bearer_token, digest, same

EVENT = "admin.initial_access_token"
PATH = "/-/admin/initial-access-tokens"
#: An admin request body is a few fields.
MAX_BODY = 4096
#: The longest a token may live: ten years.
MAX_EXPIRES_IN = 10 * 365 * 86400
_FIELDS = {"name", "expires_in", "max_uses", "tenant"}


def check_admin(admin: Admin, authorization: list[str]) -> None:
    """Refuse unless the request carries the admin token."""
    if admin.token_digest is None:
        raise rules.ADMIN_DISABLED.refuse(
            "the admin API is disabled: set admin.token_env in the config"
        )
    try:
        token = bearer_token(authorization)
    except OAuthError:
        token = None
    if token is None or not same(digest(token), admin.token_digest):
        raise rules.ADMIN_UNAUTHORIZED.refuse("the admin API needs the admin bearer token")


async def collection(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    exchange = Exchange(request, gateway, EVENT)
    return await exchange.run(_collection(exchange))


async def item(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    exchange = Exchange(request, gateway, EVENT)
    return await exchange.run(_item(exchange, request.match_info["name"]))


async def _collection(exchange: Exchange) -> web.StreamResponse:
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    check_admin(gateway.settings.admin, request.headers.getall("Authorization", []))
    issued = IssuedTokens(gateway.storage)
    if request.method == "GET":
        listed = await _storage(issued.list())
        record.decision, record.rule = "allowed", rules.ALLOW_ADMIN.id
        body = {"tokens": [_public(token, uses) for token, uses in listed]}
        return _json(200, body, record.request_id)
    if request.method != "POST":
        raise rules.ADMIN_METHOD.refuse(
            f"{request.method} is not allowed here; use GET or POST", allow="GET, POST"
        )
    check_content_headers(request.headers)
    limits = gateway.settings.limits
    fields = _fields(_parse(await read_body(request, MAX_BODY, limits.body_timeout)))
    record.extra["token_name"] = fields["name"]
    created = await _storage(issued.create(**fields))
    if created is None:
        raise rules.ADMIN_CONFLICT.refuse(f"a token named '{fields['name']}' exists already")
    token, secret = created
    record.decision, record.rule = "allowed", rules.ALLOW_ADMIN.id
    return _json(201, {**_public(token, 0), "token": secret}, record.request_id)


async def _item(exchange: Exchange, name: str) -> web.StreamResponse:
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    check_admin(gateway.settings.admin, request.headers.getall("Authorization", []))
    if request.method != "DELETE":
        raise rules.ADMIN_METHOD.refuse(
            f"{request.method} is not allowed here; use DELETE", allow="DELETE"
        )
    record.extra["token_name"] = name[:64]
    if not await _storage(IssuedTokens(gateway.storage).revoke(name)):
        raise rules.ADMIN_NOT_FOUND.refuse("no issued token has that name")
    record.decision, record.rule = "allowed", rules.ALLOW_ADMIN.id
    return web.Response(
        status=204, headers={"Cache-Control": "no-store", "X-Request-ID": record.request_id}
    )


async def _storage(operation: Any) -> Any:
    try:
        return await operation
    except StorageError:
        raise rules.storage_unavailable() from None


def _parse(raw: bytes) -> dict[str, Any]:
    """The body as one JSON object, by the registration body's strict parser; its refusals
    (bad JSON, duplicate keys, not an object) become admin ones, since an admin request is
    not client metadata."""
    try:
        return parse_body(raw)
    except OAuthError as exc:
        raise _invalid(exc.description) from None


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    """The issuing request's fields, checked; a refusal names the first bad one."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _invalid(f"unknown field '{unknown[0]}'; known: {', '.join(sorted(_FIELDS))}")
    try:
        name = as_name(body.get("name"))
    except ValueError as exc:
        raise _invalid(f"name: {exc}") from None
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 1 <= expires_in <= MAX_EXPIRES_IN
    ):
        raise _invalid(f"expires_in: a whole number of seconds from 1 to {MAX_EXPIRES_IN}")
    max_uses = body.get("max_uses")
    if max_uses is not None and (
        isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= 10**9
    ):
        raise _invalid("max_uses: a whole number from 1")
    tenant = body.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant or "/" in tenant):
        raise _invalid("tenant: a realm name")
    return {"name": name, "expires_in": expires_in, "max_uses": max_uses, "tenant": tenant}


def _invalid(why: str) -> OAuthError:
    return rules.ADMIN_INVALID.refuse(why)


def _public(token: Any, uses: int) -> dict[str, Any]:
    return {
        "name": token.name,
        "created_at": int(token.created_at),
        "expires_at": None if token.expires_at is None else int(token.expires_at),
        "max_uses": token.max_uses,
        "uses": uses,
        "tenant": token.tenant,
    }


def _json(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    return json_response(status, body, request_id)


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", PATH, collection)
    app.router.add_route("*", PATH + "/{name}", item)
