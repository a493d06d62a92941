"""Helpers for the integration tests of the policy's controls: rate limits and initial
access tokens (``rate_limits``, ``initial_access_tokens``), against both stores.

Both stores are real: ``memory://`` is the gateway's own, Redis is the session's
``redis-server``.  That server is shared by the whole session, so every test that uses it
gets a database of its own making, emptied first (:func:`storage_uri`): counters and
issued tokens of one test never leak into the next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis

from tests.support.keycloak_gateway import rule_of

#: The stores every suite runs against (pytest ids).
STORAGES = ("memory", "redis")
#: The Redis database these suites use; other suites use database 0.
REDIS_DB = 7

OPEN: dict[str, Any] = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}

#: What the open policy allows and node-oidc-provider creates.
CLIENT: dict[str, Any] = {
    "client_name": "Controls Test App",
    "redirect_uris": ["https://app.example.com/oauth/callback"],
    "scope": "openid",
}
#: Refused by every policy: plain http on a host that is not loopback.
POLICY_REFUSED: dict[str, Any] = {**CLIENT, "redirect_uris": ["http://app.example.com/cb"]}
POLICY_REFUSED_RULE = "redirect_uri.insecure_http"
#: Allowed by the open policy, refused by node-oidc-provider (a scope it does not offer).
UPSTREAM_REFUSED: dict[str, Any] = {**CLIENT, "scope": "openid unknown:scope"}


def storage_uri(request: pytest.FixtureRequest) -> str:
    """The storage URI for ``request.param`` (one of :data:`STORAGES`); Redis emptied."""
    if request.param == "memory":
        return "memory://"
    server = request.getfixturevalue("redis_server")
    uri = server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(uri)
    try:
        client.flushdb()
    finally:
        client.close()
    return uri


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(**changes: Any) -> dict[str, Any]:
    """:data:`CLIENT` with ``changes`` (a ``None`` value removes the field)."""
    body = {**CLIENT, **changes}
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def request_id(self) -> str:
        return self.headers["X-Request-ID"]

    @property
    def rule(self) -> str:
        """The rule a gateway refusal names at the end of its ``error_description``."""
        return rule_of(self.body)

    @property
    def retry_after(self) -> int:
        value = self.headers["Retry-After"]
        assert value.isdigit(), value  # whole seconds (RFC 9110 §10.2.3), no date
        return int(value)


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    if body is not None:
        kwargs["json"] = body
    async with session.request(method, url, headers=headers or {}, **kwargs) as response:
        raw = await response.read()
        try:
            parsed = await response.json(content_type=None) if raw else None
        except ValueError:
            parsed = raw
        return Answer(response.status, dict(response.headers), parsed)


async def register(
    session: aiohttp.ClientSession,
    gateway: Any,
    body: Any = None,
    headers: dict[str, str] | None = None,
    path: str = "/reg",
) -> Answer:
    """POST ``body`` (default :data:`CLIENT`) to the gateway's registration endpoint."""
    return await call(
        session, "POST", gateway.url + path, CLIENT if body is None else body, headers
    )


def event_of(gateway: Any, answer: Answer) -> dict[str, Any]:
    """The one audit event of the request that got ``answer``."""
    found = [e for e in gateway.events() if e["request_id"] == answer.request_id]
    assert len(found) == 1, found
    return found[0]


def assert_refused(answer: Answer, status: int, error: str, rule: str) -> None:
    assert answer.status == status, answer
    assert answer.body["error"] == error, answer
    assert answer.rule == rule, answer
    assert answer.headers["Cache-Control"] == "no-store"
