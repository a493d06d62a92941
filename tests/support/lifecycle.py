"""Helpers for the client lifecycle tests (issue 15): approval, expiry, cleanup, quotas,
the admin API for clients, and replicas sharing one registry.

Everything runs against the real node-oidc-provider (:mod:`tests.support.upstream`) and
both real stores (``memory://`` and the session's redis-server, see
:func:`tests.support.controls.storage_uri`).  Time is simulated, never waited for: the
lifecycle job takes ``now=`` (:func:`gateway.registry.jobs.run_once`), last uses are
written with :meth:`Registry.touch`, and a client is made older by moving its
``registered_at`` back (:func:`age`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet

from gateway.registry.entry import ClientEntry
from gateway.state import GATEWAY, Gateway
from tests.support.controls import REDIS_DB, STORAGES, Answer, bearer, call, storage_uri
from tests.support.gateway import RunningGateway, build, make_policies, make_settings
from tests.support.upstream import UpstreamServer, free_port

ADMIN_TOKEN = "lifecycle-admin-token-0123456789abcdef"
ADMIN = bearer(ADMIN_TOKEN)
#: One sealing key for every gateway of a test that shares a registry (replicas).
SHARED_KEY = Fernet.generate_key()

CLIENTS_PATH = "/-/admin/clients"

#: An open policy (any scope, the usual grants), extended by each test's lifecycle keys.
OPEN: dict[str, Any] = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}

#: A public client with a loopback redirect URI: what the code flow helper can finish.
APP_CB = "http://127.0.0.1:43210/callback"
CLAUDE_CODE_CB = "http://localhost:49321/callback"


def policy(**sections: Any) -> dict[str, Any]:
    """:data:`OPEN` with lifecycle sections, e.g. ``policy(approval={"required": True})``."""
    return {**OPEN, **sections}


def app_client(name: str = "Lifecycle Test App", **changes: Any) -> dict[str, Any]:
    """An unknown (unmanaged) public client the code flow helper can use."""
    body = {
        "client_name": name,
        "redirect_uris": [APP_CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "scope": "openid offline_access",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def claude_code(server: str = "my-server") -> dict[str, Any]:
    """Claude Code's registration (managed entry ``claude-code``), a public client."""
    return {
        "client_name": f"Claude Code ({server})",
        "redirect_uris": [CLAUDE_CODE_CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "scope": "openid offline_access",
    }


def cursor() -> dict[str, Any]:
    """Cursor's registration (managed entry ``cursor``)."""
    return {
        "client_name": "Cursor",
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ],
    }


def core(gateway: RunningGateway) -> Gateway:
    """The :class:`Gateway` object of a running gateway (registry, gate, storage ...)."""
    return gateway.app[GATEWAY]


async def entry_of(
    gateway: RunningGateway, client_id: str, tenant: str | None = None
) -> ClientEntry:
    found = await core(gateway).registry.get(tenant, client_id)
    assert found is not None, f"the registry does not know {client_id}"
    return found


async def age(gateway: RunningGateway, client_id: str, seconds: float) -> ClientEntry:
    """Move the client's ``registered_at`` ``seconds`` back, as if registered that long ago."""
    registry = core(gateway).registry
    before = await entry_of(gateway, client_id)
    after = before.with_(registered_at=before.registered_at - seconds)
    assert await registry.replace(before, after)
    return after


async def admin(
    session: aiohttp.ClientSession,
    gateway: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: Any = None,
    token: str | None = ADMIN_TOKEN,
) -> Answer:
    """An admin API call (``path`` below ``/-/admin/clients`` unless it starts with ``/``)."""
    url = gateway.url + (path if path.startswith("/") else f"{CLIENTS_PATH}/{path}".rstrip("/"))
    headers = {} if token is None else bearer(token)
    return await call(session, method, url, body, headers, params=params)


async def token_request(
    session: aiohttp.ClientSession,
    gateway: Any,
    client_id: str,
    *,
    secret: str | None = None,
    **form: str,
) -> Answer:
    """A token request naming ``client_id`` (in the body, or by Basic with ``secret``),
    with a code the upstream never issued: an allowed client gets the upstream's 400
    ``invalid_grant``, a refused one the gateway's 401 ``invalid_client``."""
    data = {
        "grant_type": "authorization_code",
        "code": "not-a-code-the-upstream-issued",
        "redirect_uri": APP_CB,
        "code_verifier": "v" * 43,
        **form,
    }
    headers: dict[str, str] = {}
    if secret is None:
        data["client_id"] = client_id
    else:
        pair = f"{client_id}:{secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return await call(session, "POST", gateway.url + "/token", headers=headers, data=data)


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str


async def authorize(
    session: aiohttp.ClientSession, gateway: Any, client_id: str, redirect_uri: str = APP_CB
) -> Page:
    """An authorization request for ``client_id``, redirects not followed."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "lifecycle-state",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    async with session.get(gateway.url + "/auth", params=params, allow_redirects=False) as response:
        return Page(response.status, dict(response.headers), await response.text())


#: What RFC 7592 §2.2 forbids in an update body (node-oidc-provider refuses them).
NOT_IN_UPDATES = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


def update_of(client: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An RFC 7592 update body from a registration answer, with ``changes``."""
    body = {k: v for k, v in client.items() if k not in NOT_IN_UPDATES}
    body.update(changes)
    return body


async def upstream_read(
    session: aiohttp.ClientSession, upstream: UpstreamServer, client_id: str, token: str
) -> Answer:
    """RFC 7592 §2.1 read, straight at the upstream (not through the gateway)."""
    return await call(session, "GET", f"{upstream.url}/reg/{client_id}", headers=bearer(token))


async def upstream_update(
    session: aiohttp.ClientSession, upstream: UpstreamServer, client: dict[str, Any], **changes: Any
) -> Answer:
    """RFC 7592 §2.2 update, straight at the upstream, past the gateway: node-oidc-provider
    rotates the registration access token (``rotateRegistrationAccessToken``), so the one
    the gateway keeps stops working."""
    url = f"{upstream.url}/reg/{client['client_id']}"
    token = client["registration_access_token"]
    return await call(session, "PUT", url, update_of(client, **changes), bearer(token))


def events_of(*gateways: Any, name: str, **match: Any) -> list[dict[str, Any]]:
    """The audit events called ``name`` of every gateway given, with the fields in
    ``match`` equal."""
    found = []
    for gateway in gateways:
        for event in gateway.events():
            if event.get("event") != name:
                continue
            if all(event.get(key) == value for key, value in match.items()):
                found.append(event)
    return found


def cleanups(*gateways: Any, **match: Any) -> list[dict[str, Any]]:
    return events_of(*gateways, name="client.cleanup", **match)


def in_future(seconds: float) -> float:
    return time.time() + seconds


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    """The storage URI of each store the lifecycle runs on (Redis emptied first)."""
    return storage_uri(request)


@pytest.fixture
def redis_storage(redis_server: Any) -> str:
    """A Redis storage URI only (for what needs a registry shared by several gateways),
    in the database :func:`storage_uri` uses, emptied first."""
    uri = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(uri)
    try:
        client.flushdb()
    finally:
        client.close()
    return uri


@dataclass
class Replica(RunningGateway):
    """A gateway in this test's event loop that can be stopped (and another started on the
    same storage), as a replica is restarted."""

    server: TestServer | None = field(default=None, repr=False)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Any]:
    """``await replicas(upstream_url, policy=..., storage=..., **settings)``: a gateway
    like ``gateway_factory``'s, with :meth:`Replica.stop`; sealing keys are
    :data:`SHARED_KEY` unless ``registry_keys`` is given, so replicas on one Redis can read
    each other's tokens."""
    started: list[Replica] = []

    async def start(
        upstream_url: str, *, policy: Any = None, port: int | None = None, **settings: Any
    ) -> Replica:
        port = port or free_port()
        audit_path = tmp_path / f"replica-{len(started) + 1}.audit.jsonl"
        settings.setdefault("registry_keys", (SHARED_KEY,))
        settings.setdefault("admin_token", ADMIN_TOKEN)
        config = make_settings(upstream_url, port, audit_path, **settings)
        server = TestServer(build(config, make_policies(policy)), host="127.0.0.1", port=port)
        await server.start_server()
        replica = Replica(f"http://127.0.0.1:{port}", server.app, audit_path, server)
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in reversed(started):
            await replica.stop()


@dataclass
class FlowUpstream:
    """An upstream whose issuer is the URL of a gateway still to be started on ``port``
    (MCP clients, and :func:`authorization_code_flow`, require the metadata ``issuer`` to
    be the URL they used)."""

    server: UpstreamServer
    port: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def flow_upstream() -> Iterator[FlowUpstream]:
    """One per module: start its gateway with ``port=flow_upstream.port``."""
    port = free_port()
    server = UpstreamServer().start(issuer=f"http://127.0.0.1:{port}")
    try:
        yield FlowUpstream(server, port)
    finally:
        server.stop()
