"""Pass-through traffic cannot starve the guarded paths, and slow uploads cannot hold the pool.

The gateway has two upstream pools: ``upstream.max_connections`` for pass-through and
``upstream.guarded_connections`` for registration, management and discovery.  A small
pass-through body is read whole (within ``limits.passthrough_body_timeout``) before an
upstream connection is taken; a large one streams with an idle timeout per chunk.

Between the gateway and the upstream sits a :class:`RecordingProxy` that counts the
connections the gateway opens and keeps every byte it sends, so a test can tell what
reached the upstream.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
import pytest

from tests.support.tcp_proxy import RecordingProxy

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}

# What an MCP SDK client sends (loopback, public client).
MCP_CLIENT = {
    "response_types": ["code"],
    "scope": "mcp:execute offline_access",
    "client_name": "Availability Agent",
    "redirect_uris": ["http://127.0.0.1:43210/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}

POOL = 5
SLOW_UPLOADS = 25  # of each kind: more than both pools together
MiB = 1024 * 1024


async def small_pool_gateway(gateway_factory, proxy: RecordingProxy, **settings: Any):
    settings.setdefault("max_connections", POOL)
    settings.setdefault("guarded_connections", POOL)
    settings.setdefault("passthrough_body_timeout", 0.5)
    return await gateway_factory(proxy.url, policy=OPEN, **settings)


# ---------------------------------------------------------------- raw HTTP clients


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway.test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


CHUNKED = "Transfer-Encoding: chunked"
FORM = "Content-Type: application/x-www-form-urlencoded"


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, headers (lower-cased names), body (sized or chunked)."""
    status_line = await reader.readline()
    assert re.match(rb"HTTP/1\.[01] \d{3} ", status_line), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while size := int((await reader.readline()).split(b";")[0], 16):
            body.extend(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readline()
        return int(status_line.split()[1]), headers, bytes(body)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, bytes(body)


class StalledUpload:
    """A connection that sent a request head and a little body, then went silent."""

    def __init__(self, port: int, data: bytes) -> None:
        self.port = port
        self.data = data
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.sent_at = 0.0

    async def open(self) -> StalledUpload:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(self.data)
        await self.writer.drain()
        self.sent_at = time.monotonic()
        return self

    async def answer(self, timeout: float) -> tuple[float, int, dict[str, str], bytes]:
        assert self.reader is not None
        async with asyncio.timeout(timeout):
            status, headers, body = await read_response(self.reader)
        return time.monotonic() - self.sent_at, status, headers, body

    def answered_yet(self) -> bool:
        assert self.reader is not None
        return bool(self.reader._buffer) or self.reader.at_eof()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def stalled_chunked(port: int, path: str = "/token") -> StalledUpload:
    return StalledUpload(port, head("POST", path, FORM, CHUNKED) + chunk(b"g"))


def stalled_sized(port: int, path: str = "/token", length: int = 100) -> StalledUpload:
    return StalledUpload(port, head("POST", path, FORM, f"Content-Length: {length}") + b"g")


async def open_all(uploads: list[StalledUpload]) -> list[StalledUpload]:
    return list(await asyncio.gather(*(upload.open() for upload in uploads)))


def assert_request_timeout(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 408, (status, body)
    assert headers["content-type"].startswith("application/json"), headers
    assert headers.get("x-request-id"), headers
    document = json.loads(body)
    assert document["error"] == "invalid_request", document
    assert document["error_description"], document


async def timed_registration(session: aiohttp.ClientSession, url: str) -> tuple[float, int, Any]:
    started = time.monotonic()
    async with session.post(url + "/reg", json=MCP_CLIENT) as response:
        document = await response.json()
        return time.monotonic() - started, response.status, document


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.monotonic()
    async with session.get(url) as response:
        await response.read()
        return time.monotonic() - started, response.status


# ---------------------------------------------------------------- starvation


async def test_stalled_uploads_do_not_starve_registrations(upstream, proxy, gateway_factory):
    # Long enough that every registration below happens while the uploads hang.
    body_timeout = 3.0
    gateway = await small_pool_gateway(
        gateway_factory, proxy, passthrough_body_timeout=body_timeout
    )
    port = port_of(gateway.url)
    before = await upstream.aclient_count()
    uploads = await open_all(
        [stalled_chunked(port) for _ in range(SLOW_UPLOADS)]
        + [stalled_sized(port) for _ in range(SLOW_UPLOADS)]
    )
    try:
        await asyncio.sleep(0.3)  # let the gateway take them all in
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            registrations = await asyncio.gather(
                *(timed_registration(session, gateway.url) for _ in range(3 * POOL))
            )
            health = [await timed_get(session, gateway.url + "/-/healthz") for _ in range(5)]
            # Pass-through is not starved either: the stalled bodies hold no upstream slot.
            relayed = await asyncio.gather(
                *(
                    timed_get(session, gateway.url + "/.well-known/openid-configuration")
                    for _ in range(2 * POOL)
                )
            )

        for elapsed, status, document in registrations:
            assert status == 201, document
            assert document["client_id"]
            assert elapsed < 2.0, elapsed
        assert await upstream.aclient_count() == before + 3 * POOL
        for elapsed, status in health:
            assert status == 200
            assert elapsed < 0.5, elapsed
        for elapsed, status in relayed:
            assert status == 200
            assert elapsed < 2.0, elapsed
        # All of that happened while every upload was still hanging.
        assert not any(upload.answered_yet() for upload in uploads), "uploads answered early"

        answers = await asyncio.gather(*(upload.answer(body_timeout + 5) for upload in uploads))
    finally:
        for upload in uploads:
            upload.close()
    for elapsed, status, headers, body in answers:
        assert_request_timeout(status, headers, body)
        assert elapsed >= body_timeout - 0.5, elapsed
    assert not proxy.saw(b"POST /token"), proxy.requests()


async def test_stalled_small_bodies_get_408_and_never_reach_the_upstream(proxy, gateway_factory):
    gateway = await small_pool_gateway(gateway_factory, proxy, passthrough_body_timeout=0.5)
    port = port_of(gateway.url)
    connections_before = proxy.connections
    since = proxy.mark()  # after start-up discovery
    uploads = await open_all(
        [stalled_chunked(port, "/token") for _ in range(SLOW_UPLOADS)]
        + [stalled_sized(port, "/token") for _ in range(SLOW_UPLOADS)]
        + [stalled_chunked(port, "/__test/echo/stalled-chunked") for _ in range(3)]
        + [stalled_sized(port, "/__test/echo/stalled-sized", 64 * 1024) for _ in range(3)]
    )
    try:
        answers = await asyncio.gather(*(upload.answer(5.0) for upload in uploads))
    finally:
        for upload in uploads:
            upload.close()
    for elapsed, status, headers, body in answers:
        assert_request_timeout(status, headers, body)
        assert 0.4 <= elapsed < 2.5, elapsed
        assert "0.5 seconds" in json.loads(body)["error_description"]
    assert proxy.requests(since) == [], proxy.requests(since)
    assert proxy.connections == connections_before

    # The gateway is unharmed and relays at once.
    async with aiohttp.ClientSession() as session:
        async with session.post(gateway.url + "/__test/echo", data=b"after") as response:
            assert (await response.json())["body"] == "after"


async def test_stalled_uploads_free_the_pool_after_the_body_timeout(proxy, gateway_factory):
    # Large bodies must stream, so each stalled one does hold a pass-through connection, but
    # only until its chunk idles out; the guarded pool is untouched meanwhile.
    gateway = await small_pool_gateway(
        gateway_factory, proxy, max_connections=2, passthrough_body_timeout=0.5, timeout=5.0
    )
    port = port_of(gateway.url)
    uploads = [
        StalledUpload(
            port,
            head("POST", f"/__test/echo/large-{i}", f"Content-Length: {MiB}") + b"x" * 200_000,
        )
        for i in range(4)
    ]
    uploads = await open_all(uploads)
    try:
        async with aiohttp.ClientSession() as session:
            elapsed, status, document = await timed_registration(session, gateway.url)
            assert status == 201, document
            assert elapsed < 2.0, elapsed
            await asyncio.sleep(1.5)  # every stalled upload has idled out by now
            elapsed, status = await timed_get(session, gateway.url + "/__test/clients")
            assert status == 200
            assert elapsed < 1.0, elapsed
    finally:
        for upload in uploads:
            upload.close()


# ---------------------------------------------------------------- large and slow bodies


async def test_large_upload_streams_through_intact(proxy, gateway_factory):
    gateway = await small_pool_gateway(gateway_factory, proxy)
    body = bytes(ord("a") + i % 26 for i in range(MiB))

    async def chunks():
        for offset in range(0, len(body), 100_000):
            yield body[offset : offset + 100_000]

    async with aiohttp.ClientSession() as session:
        async with session.put(gateway.url + "/__test/echo/sized", data=body) as response:
            sized = await response.json()
        async with session.post(gateway.url + "/__test/echo/chunked", data=chunks()) as response:
            chunked = await response.json()
    assert sized["body_length"] == MiB
    assert sized["body"] == body.decode()
    assert sized["headers"]["content-length"] == str(MiB)
    assert chunked["body_length"] == MiB
    assert chunked["body"] == body.decode()
    assert "content-length" not in chunked["headers"]
    assert chunked["headers"]["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_large_upload_that_stalls_midway_is_cut_off(proxy, gateway_factory, framing):
    gateway = await small_pool_gateway(
        gateway_factory, proxy, max_connections=1, passthrough_body_timeout=0.5, timeout=30.0
    )
    port = port_of(gateway.url)
    sent = b"y" * (256 * 1024)
    if framing == "chunked":
        data = head("POST", "/__test/echo/stall", CHUNKED) + chunk(sent)
    else:
        data = head("POST", "/__test/echo/stall", f"Content-Length: {MiB}") + sent
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
        # Whatever the gateway says, it must then close the connection, and soon: long before
        # the 30 s upstream deadline.
        async with asyncio.timeout(12.0):
            answer = await reader.read()  # until EOF
        elapsed = time.monotonic() - started
    finally:
        writer.close()
    assert elapsed >= 0.4, elapsed
    # The upstream saw a truncated request, and the single pass-through slot is free again.
    assert proxy.saw(b"POST /__test/echo/stall")
    async with aiohttp.ClientSession() as session:
        fresh, status = await timed_get(session, gateway.url + "/__test/clients")
    assert status == 200
    assert fresh < 1.0, fresh
    if answer:
        # Headers are not out yet, so a status can still be given: the client stalled, the
        # upstream did nothing wrong, so this is request.timeout (408), not upstream.timeout.
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 408 "), answer[:400]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "invalid_request"


@pytest.mark.parametrize("size", [1000, 256 * 1024], ids=["small", "large"])
async def test_broken_chunked_framing_is_the_clients_fault(proxy, gateway_factory, size):
    # Framing that breaks after `size` good bytes is the client's fault, whether the body was
    # still being read whole or already streaming upstream: request.bad_framing (400), or at
    # worst request.timeout (408) when the gateway only sees the body stop; never a 5xx that
    # blames the authorization server.
    gateway = await small_pool_gateway(gateway_factory, proxy, max_connections=1)
    data = head("POST", "/__test/echo/broken", CHUNKED) + chunk(b"z" * size) + b"zz\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gateway.url))
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(12.0):
            answer = await reader.read()  # until EOF
    finally:
        writer.close()
    async with aiohttp.ClientSession() as session:
        fresh, status = await timed_get(session, gateway.url + "/__test/clients")
    assert status == 200
    assert fresh < 1.0, fresh
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert match, answer[:400]
    allowed = {400} if size <= 64 * 1024 else {400, 408}
    assert int(match.group(1)) in allowed, answer[:400]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "invalid_request"


async def test_steady_slow_small_chunked_body_is_delivered(proxy, gateway_factory):
    # Ten chunks 100 ms apart: the whole body takes twice the timeout, no gap comes near it.
    gateway = await small_pool_gateway(gateway_factory, proxy, passthrough_body_timeout=0.5)
    parts = [f"part{i:02d}-".encode() for i in range(10)]

    async def slowly():
        for part in parts:
            yield part
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession() as session:
        async with session.post(gateway.url + "/__test/echo/steady", data=slowly()) as response:
            assert response.status == 200
            echo = await response.json()
    assert echo["body"] == b"".join(parts).decode()


async def test_steady_slow_small_sized_body_within_the_timeout_is_delivered(proxy, gateway_factory):
    # A small body with a Content-Length is read whole within the timeout.
    gateway = await small_pool_gateway(gateway_factory, proxy, passthrough_body_timeout=1.5)
    parts = [f"part{i:02d}-".encode() for i in range(8)]
    port = port_of(gateway.url)
    length = sum(map(len, parts))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head("POST", "/__test/echo/steady", f"Content-Length: {length}"))
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.1)
        async with asyncio.timeout(5):
            status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 200, body
    assert json.loads(body)["body"] == b"".join(parts).decode()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_steady_slow_large_body_is_delivered(proxy, gateway_factory, framing):
    # 20 chunks of 64 KiB, 100 ms apart: 2 s in all, four times the per-chunk timeout.
    gateway = await small_pool_gateway(gateway_factory, proxy, passthrough_body_timeout=0.5)
    parts = [bytes([ord("A") + i]) * 65536 for i in range(20)]
    port = port_of(gateway.url)
    total = sum(map(len, parts))
    if framing == "chunked":
        request_head = head("POST", "/__test/echo/steady-large", CHUNKED)
    else:
        request_head = head("POST", "/__test/echo/steady-large", f"Content-Length: {total}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_head)
        for part in parts:
            writer.write(chunk(part) if framing == "chunked" else part)
            await writer.drain()
            await asyncio.sleep(0.1)
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        async with asyncio.timeout(10):
            status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 200, body[:400]
    echo = json.loads(body)
    assert echo["body_length"] == total
    assert echo["body"] == b"".join(parts).decode()


async def test_steady_large_upload_may_outlast_the_upstream_timeout(proxy, gateway_factory):
    # `upstream.timeout` is the "longest wait for the upstream's answer": a large upload whose
    # every chunk is on time must not be cut off because sending it takes longer than that.
    gateway = await small_pool_gateway(
        gateway_factory, proxy, passthrough_body_timeout=0.5, timeout=1.0
    )
    parts = [bytes([ord("a") + i]) * 65536 for i in range(20)]
    port = port_of(gateway.url)
    total = sum(map(len, parts))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head("POST", "/__test/echo/outlast", f"Content-Length: {total}"))
        for part in parts:  # 2 s of upload, twice upstream.timeout
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.1)
        async with asyncio.timeout(10):
            status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 200, body[:400]
    assert json.loads(body)["body_length"] == total
