"""The shipped nginx recipe (``deploy/nginx/dcr-gateway.conf``), run by a real nginx in
front of a real gateway and the real test authorization server.

Two recording relays show who received what: one between nginx and the gateway, one
between nginx and the authorization server (the gateway reaches the authorization server
on its own connection, not through that relay).  So "went to the gateway" and "went
straight upstream" are observed, not inferred.  The hostile spellings of the
registration path must reach the gateway (and be judged and audited) or be refused by
nginx; none may reach the authorization server directly.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from tests.support.gateway import RunningGateway
from tests.support.nginx import Nginx, nginx_binary, render_recipe
from tests.support.rawhttp import Reply, raw_request
from tests.support.tcp_proxy import RecordingProxy
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

POLICY = {
    "version": 1,
    "mode": "allowlist",
    "redirect_uris": {"managed_list": "none", "allow": ["https://good.example/cb"]},
}
GOOD = {"client_name": "edge", "redirect_uris": ["https://good.example/cb"]}
EVIL = {"client_name": "edge", "redirect_uris": ["https://evil.example/cb"]}
#: The test client connects from here, an address nobody trusts (nginx is 127.0.0.1).
CLIENT_ADDRESS = "127.0.0.2"

#: Spellings of POST /reg that the gateway guards (gateway/uri/paths.py) or nginx refuses.
HOSTILE = [
    "/reg",
    "/REG",
    "/Reg/",
    "/reg/",
    "//reg",
    "///reg//",
    "/./reg",
    "/x/../reg",
    "/x/%2e%2e/reg",
    "/x/.%2E/reg",
    "/x/..%2Freg",
    "/x%2F..%2Freg",
    "/%2Freg",
    "/reg%2F",
    "/%72eg",
    "/%52%45%47",
    "/%2572eg",
    "/%252572eg",
    "/reg;x",
    "/reg;x=1/",
    "/reg%3Bx",
    "/reg%20",
    "/%20reg",
    "/reg%09",
    "/x\\..\\reg",
    "/x%5C..%5Creg",
    "/../reg",
    "/%2e%2e/reg",
    "/reg%00",
    "/reg?x=/../y",
    "/reg/.",
    "/reg/x/..",
]
#: What nginx itself refuses (400): climbing above the root, a NUL.
NGINX_REFUSES = ["/../reg", "/%2e%2e/reg", "/reg%00"]
#: Odd paths that are not the registration path (encoded four times; not ASCII): nginx
#: cannot vouch for them, so they go to the gateway, which passes them through.
ODD_UNGUARDED = ["/%25252572eg", "/r%C3%A9g", "/x%3B/y"]
#: Management (RFC 7592) spellings: below the registration path, one client id.
HOSTILE_MANAGEMENT = ["/REG/some-client", "/reg;x/some-client", "//reg//some-client/"]


@dataclass
class Stack:
    nginx: Nginx
    gateway: RunningGateway
    to_gateway: RecordingProxy
    direct: RecordingProxy

    @property
    def url(self) -> str:
        return self.nginx.url


async def start_stack(
    upstream, gateway_factory, workdir: Path, *, client_endpoints: bool = False
) -> tuple[Stack, list[RecordingProxy]]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed; scripts/test installs it (ensure_nginx)")
    nginx_port, gateway_port = free_port(), free_port()
    gateway = await gateway_factory(
        upstream.url,
        policy=POLICY,
        port=gateway_port,
        public_url=f"http://127.0.0.1:{nginx_port}",
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    to_gateway = await RecordingProxy(gateway_port).start()
    direct = await RecordingProxy(upstream.port).start()
    site = render_recipe(
        listen_port=nginx_port,
        gateway_port=int(to_gateway.url.rsplit(":", 1)[1]),
        upstream_port=int(direct.url.rsplit(":", 1)[1]),
        client_endpoints=client_endpoints,
    )
    nginx = Nginx(workdir, site).start(nginx_port)
    return Stack(nginx, gateway, to_gateway, direct), [to_gateway, direct]


@pytest.fixture
async def stack(upstream, gateway_factory, tmp_path: Path) -> AsyncIterator[Stack]:
    running, relays = await start_stack(upstream, gateway_factory, tmp_path / "nginx")
    try:
        yield running
    finally:
        running.nginx.stop()
        for relay in relays:
            await relay.close()


def client_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector)


_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP/1\.[01]\r\n")


def received(relay: RecordingProxy, since: int) -> list[str]:
    """The request lines that went through ``relay`` since ``since``.  nginx keeps its
    connections alive, so a request line may follow a body directly (no CRLF before it);
    the bodies sent here never hold one."""
    found = _REQUEST_LINE.findall(bytes(relay.sent[since:]))
    return [f"{method.decode()} {target.decode('latin-1')}" for method, target in found]


def refused_by_nginx(reply: Reply) -> bool:
    """nginx's own 400 page (nginx names itself in ``Server`` on every answer, its own or
    relayed, so the body tells them apart)."""
    return reply.status == 400 and (reply.header("Content-Type") or "").startswith("text/html")


async def test_a_registration_reaches_the_gateway_with_the_callers_identity(stack: Stack):
    at_gateway, at_upstream = stack.to_gateway.mark(), stack.direct.mark()
    async with client_session() as session:
        async with session.post(
            stack.url + "/reg",
            json=GOOD,
            headers={
                "X-Request-ID": "edge-request-1",
                "X-Forwarded-For": "203.0.113.9",  # forged: left of what nginx saw
                "Forwarded": "for=198.51.100.1",  # forged: replaced by nginx
            },
        ) as allowed:
            assert allowed.status == 201
            assert allowed.headers["X-Request-ID"] == "edge-request-1"
        async with session.post(stack.url + "/reg", json=EVIL) as denied:
            assert denied.status == 400
            assert (await denied.json())["error"] == "invalid_redirect_uri"
            nginx_request_id = denied.headers["X-Request-ID"]
    assert received(stack.to_gateway, at_gateway) == ["POST /reg", "POST /reg"]
    assert received(stack.direct, at_upstream) == []
    first, second = stack.gateway.registrations()
    assert (first["decision"], first["status"], first["path"]) == ("allowed", 201, "/reg")
    assert first["client_ip"] == CLIENT_ADDRESS
    assert first["request_id"] == "edge-request-1"
    assert (second["decision"], second["rule"]) == ("denied", "redirect_uri.not_allowed")
    assert second["request_id"] == nginx_request_id  # made by nginx, kept by the gateway
    assert second["client_ip"] == CLIENT_ADDRESS


async def test_pass_through_goes_straight_to_the_upstream(stack: Stack):
    at_gateway, at_upstream = stack.to_gateway.mark(), stack.direct.mark()
    async with client_session() as session:
        async with session.get(
            stack.url + "/__test/echo?q=1",
            headers={
                "Host": "auth.example.test",
                "X-Forwarded-For": "203.0.113.9",
                "Forwarded": "for=198.51.100.1",
                "X-Request-ID": "edge-request-2",
            },
        ) as echo:
            assert echo.status == 200
            seen = (await echo.json())["headers"]
        async with session.get(stack.url + "/jwks") as keys:
            assert keys.status == 200
            assert "keys" in await keys.json()
    assert received(stack.direct, at_upstream) == ["GET /__test/echo?q=1", "GET /jwks"]
    assert received(stack.to_gateway, at_gateway) == []  # the gateway never saw them
    assert seen["host"] == "auth.example.test"
    assert seen["x-forwarded-for"] == f"203.0.113.9, {CLIENT_ADDRESS}"
    assert seen["forwarded"] == f"for={CLIENT_ADDRESS};host=auth.example.test;proto=http"
    assert seen["x-request-id"] == "edge-request-2"
    assert stack.gateway.events() == []


async def test_discovery_goes_to_the_gateway_in_every_form(stack: Stack):
    at_gateway, at_upstream = stack.to_gateway.mark(), stack.direct.mark()
    async with client_session() as session:
        for path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/.WELL-KNOWN/OpenID-Configuration/",
        ):
            async with session.get(stack.url + path) as metadata:
                assert metadata.status == 200, path
                document = await metadata.json()
                assert document["registration_endpoint"] == stack.url + "/reg", path
        # The RFC 8414 path-insertion form goes to the gateway too (which, with the
        # generic profile, has no such document and passes it through).
        async with session.get(stack.url + "/.well-known/oauth-authorization-server/x") as r:
            await r.read()
    assert len(received(stack.to_gateway, at_gateway)) == 4
    assert received(stack.direct, at_upstream) == []


async def test_only_liveness_of_the_gateways_own_endpoints_is_public(stack: Stack):
    at_gateway = stack.to_gateway.mark()
    async with client_session() as session:
        async with session.get(stack.url + "/-/healthz") as alive:
            assert alive.status == 200
            assert await alive.json() == {"status": "ok"}
        for path in ("/-/readyz", "/-/admin/clients", "/%2D/admin/clients", "//-/./admin"):
            async with session.get(stack.url + path) as hidden:
                assert hidden.status == 404, path
                assert hidden.headers["Server"].startswith("nginx"), path
    assert received(stack.to_gateway, at_gateway) == ["GET /-/healthz"]


async def test_hostile_spellings_of_the_registration_path_never_go_straight_upstream(
    stack: Stack, upstream
):
    clients_before = await upstream.aclient_count()
    at_gateway, at_upstream = stack.to_gateway.mark(), stack.direct.mark()
    edge = SimpleNamespace(url=stack.url)
    judged: list[str] = []
    refused: list[str] = []
    for target in HOSTILE:
        reply = await raw_request(edge, "POST", target, EVIL)
        if refused_by_nginx(reply):
            refused.append(target)
            continue
        assert reply.status == 400, (target, reply)
        assert reply.json()["error"] == "invalid_redirect_uri", (target, reply)
        judged.append(target)
    assert refused == NGINX_REFUSES
    for target in HOSTILE_MANAGEMENT:
        reply = await raw_request(edge, "GET", target)
        assert reply.status == 401, (target, reply)  # no registration access token
        judged.append(target)
    for target in ODD_UNGUARDED:
        reply = await raw_request(edge, "GET", target)
        assert reply.status == 404, (target, reply)  # the upstream's answer, via the gateway
    assert received(stack.direct, at_upstream) == []
    assert await upstream.aclient_count() == clients_before
    # Every spelling nginx passed on reached the gateway as the client wrote it, and was
    # judged there: one audit event each.
    lines = received(stack.to_gateway, at_gateway)
    assert [line.split(" ", 1)[1] for line in lines] == judged + ODD_UNGUARDED
    events = stack.gateway.events()  # none for the odd unguarded paths: pass-through
    assert [e["path"] for e in events] == [t.split("?", 1)[0] for t in judged]
    registrations = events[: -len(HOSTILE_MANAGEMENT)]
    assert {(e["event"], e["decision"], e["rule"]) for e in registrations} == {
        ("registration", "denied", "redirect_uri.not_allowed")
    }
    assert {e["event"] for e in events[-len(HOSTILE_MANAGEMENT) :]} == {"client.read"}


async def test_client_endpoints_go_to_the_gateway_only_with_the_optional_block(
    upstream, gateway_factory, tmp_path: Path
):
    paths = ["/auth?client_id=abc", "/TOKEN/introspection", "/request"]
    for enabled in (False, True):
        running, relays = await start_stack(
            upstream, gateway_factory, tmp_path / f"nginx-{enabled}", client_endpoints=enabled
        )
        try:
            at_gateway, at_upstream = running.to_gateway.mark(), running.direct.mark()
            async with client_session() as session:
                for path in paths:
                    async with session.get(running.url + path, allow_redirects=False) as r:
                        await r.read()
            to_gateway = received(running.to_gateway, at_gateway)
            direct = received(running.direct, at_upstream)
            expected = [f"GET {p}" for p in paths]
            assert (to_gateway, direct) == ((expected, []) if enabled else ([], expected))
        finally:
            running.nginx.stop()
            for relay in relays:
                await relay.close()
