"""Everything that is not registration passes through untouched, against the real upstream."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import aiohttp
import pytest

from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


async def test_discovery_names_the_gateway(upstream_factory, gateway_factory):
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    server = upstream_factory(issuer=gateway_url)
    await gateway_factory(server.url, port=port)
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway_url + "/.well-known/openid-configuration") as response:
            assert response.status == 200
            document = await response.json()
    assert document["issuer"] == gateway_url
    assert document["registration_endpoint"] == gateway_url + "/reg"
    assert document["token_endpoint"].startswith(gateway_url + "/")
    assert document["authorization_endpoint"].startswith(gateway_url + "/")


async def test_large_response_is_streamed_byte_exact(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    size = 5 * 1024 * 1024 + 7
    received = bytearray()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/large?bytes={size}") as response:
            assert response.status == 200
            assert response.headers.get("Transfer-Encoding") == "chunked"
            async for chunk in response.content.iter_chunked(65536):
                received.extend(chunk)
    assert len(received) == size
    pattern = b"abcdefghij"
    assert bytes(received[:20]) == pattern * 2
    assert bytes(received) == (pattern * (size // 10 + 1))[:size]


async def test_large_request_body_is_streamed_with_its_length(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    body = b"x" * (3 * 1024 * 1024)
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{gateway.url}/__test/echo", data=body) as response:
            echo = await response.json()
    assert echo["method"] == "PUT"
    assert echo["body_length"] == len(body)
    assert echo["headers"]["content-length"] == str(len(body))


async def test_chunked_request_body_passes(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)

    async def chunks():
        for _ in range(4):
            yield b"0123456789"

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/__test/echo", data=chunks()) as response:
            echo = await response.json()
    assert echo["body"] == "0123456789" * 4


@pytest.mark.parametrize(
    "target",
    [
        "/__test/echo?a=%2F&b=+&c=%zz&d&e=%E2%82%AC&f=%2e%2E",
        "/__test/echo?redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb&&x==y",
        "/__test/echo/a%20b/%7Euser?q",
    ],
)
async def test_path_and_query_are_kept_byte_for_byte(upstream, gateway_factory, target):
    gateway = await gateway_factory(upstream.url)
    port = int(gateway.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"path":"' + target.encode() + b'"' in body


async def test_hop_by_hop_and_override_headers_are_removed(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    headers = {
        "Connection": "keep-alive, X-Hop-Secret",
        "X-Hop-Secret": "must-not-pass",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "X-HTTP-Method-Override": "DELETE",
        "X-End-To-End": "kept",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/echo", headers=headers) as response:
            echo = await response.json()
    sent = echo["headers"]
    for name in (
        "x-hop-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "x-http-method-override",
    ):
        assert name not in sent, name
    assert sent["x-end-to-end"] == "kept"
    assert echo["method"] == "GET"


async def test_forwarding_headers_from_an_untrusted_peer_are_replaced(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    spoofed = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=203.0.113.9;host=evil.example",
        "X-Real-IP": "203.0.113.9",
        "Host": "evil.example",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/echo", headers=spoofed) as response:
            echo = await response.json()
    sent = echo["headers"]
    authority = gateway.url.removeprefix("http://")
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-host"] == authority
    assert sent["x-forwarded-proto"] == "http"
    assert sent["forwarded"] == f'for=127.0.0.1;host="{authority}";proto=http'
    assert "x-real-ip" not in sent
    assert sent["host"] == upstream.url.removeprefix("http://")


async def test_forwarding_headers_from_a_trusted_proxy_are_extended(upstream, gateway_factory):
    import ipaddress

    gateway = await gateway_factory(
        upstream.url, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    given = {
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Host": "auth.example.com",
        "X-Forwarded-Proto": "https",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/echo", headers=given) as response:
            echo = await response.json()
    sent = echo["headers"]
    assert sent["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert sent["x-forwarded-host"] == "auth.example.com"
    assert sent["x-forwarded-proto"] == "https"


async def test_repeated_headers_and_cookies_are_preserved(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/cookies") as response:
            assert response.headers.getall("Set-Cookie") == [
                "a=1; Path=/",
                "b=2; Path=/; HttpOnly",
            ]
            assert response.headers.getall("X-Multi") == ["one", "two"]


async def test_redirects_are_returned_not_followed(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/redirect", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/somewhere-else"


async def test_an_untrusted_request_id_is_forwarded_but_not_adopted(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{gateway.url}/__test/echo", headers={"X-Request-ID": "trace-abc.123"}
        ) as response:
            echo = await response.json()
            own = response.headers["X-Request-ID"]
            assert own != "trace-abc.123" and len(own) == 32
        assert echo["headers"]["x-request-id"] == "trace-abc.123"
        async with session.get(f"{gateway.url}/__test/echo") as response:
            generated = response.headers["X-Request-ID"]
            echo = await response.json()
        assert len(generated) == 32
        assert echo["headers"]["x-request-id"] == generated


async def test_a_trusted_proxy_s_request_id_is_adopted(upstream, gateway_factory):
    gateway = await gateway_factory(
        upstream.url, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{gateway.url}/__test/echo", headers={"X-Request-ID": "trace-abc.123"}
        ) as response:
            echo = await response.json()
            assert response.headers["X-Request-ID"] == "trace-abc.123"
        assert echo["headers"]["x-request-id"] == "trace-abc.123"


async def test_upstream_down_is_a_json_502(gateway_factory):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, registration_paths=("/reg",))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/.well-known/openid-configuration") as response:
            assert response.status == 502
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.headers["Cache-Control"] == "no-store"
            body = await response.json()
    assert body["error"] == "temporarily_unavailable"


async def test_slow_upstream_is_a_json_504(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url, timeout=0.3)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/__test/slow?ms=2000") as response:
            assert response.status == 504
            body = await response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "in time" in body["error_description"]


async def test_head_keeps_the_upstream_length(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/.well-known/openid-configuration") as response:
            length = len(await response.read())
        async with session.head(f"{gateway.url}/.well-known/openid-configuration") as response:
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == length
            assert await response.read() == b""


async def test_absolute_form_target_cannot_reach_another_host(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    port = int(gateway.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET http://169.254.169.254/__test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    # The target's path is served by the configured upstream, never the named host.
    assert head.startswith(b"HTTP/1.1 200")
    assert b'"path":"/__test/echo"' in body


async def test_gateway_endpoints(upstream, gateway_factory):
    gateway = await gateway_factory(upstream.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/-/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        async with session.get(f"{gateway.url}/-/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["checks"]["storage"] == "ok"
            assert body["checks"]["upstream"].startswith("ok")
        async with session.get(f"{gateway.url}/-/nothing-here") as response:
            assert response.status == 404
            assert (await response.json())["error"] == "not_found"


async def test_readyz_fails_when_upstream_is_down(gateway_factory):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await gateway_factory(dead, registration_paths=("/reg",))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/-/readyz") as response:
            assert response.status == 503
            body = await response.json()
    assert body["checks"]["upstream"] == "unreachable"


async def test_readyz_checks_a_real_redis(upstream, gateway_factory, redis_server, tmp_path):
    from tests.support.redis import RedisServer

    gateway = await gateway_factory(upstream.url, storage=redis_server.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/-/readyz") as response:
            assert response.status == 200
            assert (await response.json())["checks"]["storage"] == "ok"

    stopped = RedisServer(tmp_path).start()
    stopped_url = stopped.url
    stopped.stop()
    gateway = await gateway_factory(upstream.url, storage=stopped_url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.url}/-/readyz") as response:
            assert response.status == 503
            assert (await response.json())["checks"]["storage"] == "unreachable"


async def test_the_upstream_gets_no_header_the_client_did_not_send(upstream, gateway_factory):
    """aiohttp adds User-Agent, Accept and Accept-Encoding to requests of its own; relayed,
    an Accept-Encoding the client never sent would get it an answer it cannot read."""
    from tests.support.rawhttp import raw_one

    gateway = await gateway_factory(upstream.url)
    reply = await raw_one(
        gateway,
        b"POST /__test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 2\r\n\r\nhi",
    )
    assert reply.status == 200
    echo = json.loads(reply.body)
    sent = set(echo["headers"])
    assert not sent & {"user-agent", "accept", "accept-encoding", "content-type"}, sent
    assert echo["body"] == "hi"
