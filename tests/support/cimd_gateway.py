"""Fixtures and helpers for the gateway's Client ID Metadata Document tests.

The pieces are all real: node-oidc-provider as the upstream (without CIMD for bridge mode,
with it for police mode), the gateway in-process, and an HTTPS document server
(:mod:`tests.support.cimd_documents`) whose certificate the gateway trusts through
``cimd.fetch.ca_file`` and whose host names it resolves to 127.0.0.1 through
``cimd.fetch.resolve`` (with 127.0.0.1/32 exempt from the special-use address rule).

Import the fixtures a module uses by name (``cimd_authority``, ``documents``,
``cimd_upstream``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from gateway.config.settings import Cimd, CimdFetch
from gateway.state import GATEWAY, Gateway
from tests.support.cimd_documents import HOSTS, Authority, DocumentServer, make_authority
from tests.support.gateway import RunningGateway
from tests.support.upstream import UpstreamServer, free_port

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
#: The loopback redirect URI a document lists (no port, RFC 8252 §7.3) ...
DOC_CALLBACK = "http://127.0.0.1/callback"
#: ... and the one the client uses at run time (an ephemeral port).
CALLBACK = "http://127.0.0.1:45678/callback"
#: Any application, any scope: the policy engine is not what these tests are about.
OPEN: dict[str, Any] = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
PKCE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def allowlist(
    cimd_allow: list[str], redirect_allow: list[str] | None = None, **sections: Any
) -> dict[str, Any]:
    """An allowlist policy: the client_id URL patterns of ``cimd.allow`` and the redirect
    URI patterns of ``redirect_uris.allow`` (default: the loopback callback)."""
    return {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {"allow": redirect_allow or [DOC_CALLBACK]},
        "client": {"scopes": {"allowed": "any"}},
        "cimd": {"allow": cimd_allow},
        **sections,
    }


def document(url: str, **changes: Any) -> dict[str, Any]:
    """A valid public-client document for ``url`` (what an MCP client publishes), with
    ``changes`` (a ``None`` value removes the field)."""
    body: dict[str, Any] = {
        "client_id": url,
        "client_name": "Example MCP Client",
        "client_uri": "https://mcp-client.example.com/",
        "redirect_uris": [DOC_CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid offline_access",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def fetch_settings(
    authority: Authority,
    *,
    timeout: float = 2.0,
    exempt: bool = True,
    hosts: tuple[str, ...] = HOSTS,
    max_bytes: int = 5 * 1024,
) -> CimdFetch:
    """``cimd.fetch`` for the test document server: its CA trusted, ``hosts`` resolved to
    127.0.0.1, and 127.0.0.1 exempt from the special-use address rule unless ``exempt`` is
    false."""
    return CimdFetch(
        timeout=timeout,
        max_bytes=max_bytes,
        ca_file=authority.ca_file,
        allow_private_addresses=LOOPBACK if exempt else (),
        resolve=tuple((host, "127.0.0.1") for host in hosts),
    )


def cimd_on(authority: Authority, mode: str = "bridge", **fetch: Any) -> Cimd:
    return Cimd(enabled=True, mode=mode, fetch=fetch_settings(authority, **fetch))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def cimd_authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """The document server's CA and certificate (one for the whole session)."""
    return make_authority(tmp_path_factory.mktemp("cimd-ca"))


@pytest.fixture
async def documents(cimd_authority: Authority) -> AsyncIterator[DocumentServer]:
    """The HTTPS document server, in the test's event loop; configure it with ``serve``."""
    async with DocumentServer(cimd_authority.cert) as server:
        yield server


@dataclass
class FlowUpstream:
    """An upstream whose issuer is the URL of a gateway still to be started on ``port``
    (the code flow helper checks the metadata ``issuer`` like MCP clients do)."""

    server: UpstreamServer
    port: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def count(self) -> int:
        return await self.server.aclient_count()


@pytest.fixture(scope="module")
def cimd_upstream() -> Iterator[FlowUpstream]:
    """node-oidc-provider without CIMD, one per module; start gateways with
    ``port=cimd_upstream.port``."""
    port = free_port()
    server = UpstreamServer().start(issuer=f"http://127.0.0.1:{port}")
    try:
        yield FlowUpstream(server, port)
    finally:
        server.stop()


async def start_gateway(
    gateway_factory: Any,
    upstream: FlowUpstream,
    authority: Authority,
    *,
    policy: Any = None,
    mode: str = "bridge",
    fetch: dict[str, Any] | None = None,
    port: int | None = None,
    **settings: Any,
) -> RunningGateway:
    """A gateway with CIMD on in front of ``upstream`` (on the upstream's issuer port
    unless ``port`` is given)."""
    return await gateway_factory(
        upstream.url,
        port=port or upstream.port,
        policy=OPEN if policy is None else policy,
        cimd=cimd_on(authority, mode, **(fetch or {})),
        **settings,
    )


def core(gateway: RunningGateway) -> Gateway:
    return gateway.app[GATEWAY]


# --------------------------------------------------------------------------- requests


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def authorization_params(
    client_id: str, redirect_uri: str | None = CALLBACK, **extra: str
) -> dict[str, str]:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid",
        "state": "cimd-state",
        "code_challenge": PKCE_CHALLENGE,
        "code_challenge_method": "S256",
        **extra,
    }
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    return params


async def authorize(
    session: aiohttp.ClientSession,
    gateway: RunningGateway,
    client_id: str,
    redirect_uri: str | None = CALLBACK,
    *,
    accept: str | None = None,
) -> Page:
    """``GET /auth`` for ``client_id``, redirects not followed."""
    headers = {} if accept is None else {"Accept": accept}
    async with session.get(
        gateway.url + "/auth",
        params=authorization_params(client_id, redirect_uri),
        headers=headers,
        allow_redirects=False,
    ) as response:
        return Page(response.status, dict(response.headers), await response.text())


async def token_request(
    session: aiohttp.ClientSession, gateway: RunningGateway, client_id: str
) -> Page:
    """A token request naming ``client_id`` in the body, with a code nobody issued."""
    data = {
        "grant_type": "authorization_code",
        "code": "not-a-code-the-upstream-issued",
        "redirect_uri": CALLBACK,
        "code_verifier": "v" * 43,
        "client_id": client_id,
    }
    async with session.post(gateway.url + "/token", data=data) as response:
        return Page(response.status, dict(response.headers), await response.text())


# --------------------------------------------------------------------------- audit


def decisions(gateway: RunningGateway, **match: Any) -> list[dict[str, Any]]:
    """The gateway's ``cimd.decision`` events with the fields in ``match`` equal."""
    return [
        e
        for e in gateway.events()
        if e.get("event") == "cimd.decision" and all(e.get(k) == v for k, v in match.items())
    ]


def registrations(gateway: RunningGateway) -> list[dict[str, Any]]:
    return gateway.registrations()


def assert_refusal_page(page: Page, rule: str) -> None:
    """The gateway's own refusal at the authorization endpoint: a 400 HTML page naming the
    rule, never a redirect (the redirect URIs were not validated, RFC 9700 §4.11.2)."""
    assert page.status == 400, page
    assert "Location" not in page.headers, page.headers
    assert page.headers["Content-Type"].startswith("text/html"), page.headers
    assert page.headers["Cache-Control"] == "no-store", page.headers
    assert f"({rule})" in page.text, page.text


def assert_refusal_json(
    page: Page, rule: str, status: int = 400, error: str = "invalid_client"
) -> None:
    """The same refusal as JSON (``Accept: application/json``, or a token request)."""
    assert page.status == status, page
    assert "Location" not in page.headers, page.headers
    assert page.headers["Content-Type"].startswith("application/json"), page.headers
    body = page.json()
    assert body["error"] == error, body
    assert body["error_description"].endswith(f"(rule {rule})"), body
