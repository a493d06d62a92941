"""The bundled test authorization server works on its own, so gateway tests can rely on it."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import re
import socket
import struct
import time
import urllib.request
from typing import Any

import aiohttp
import pytest

from tests.support.fixtures import UpstreamFactory
from tests.support.oauth_flow import (
    OAuthFlowError,
    authorization_code_flow,
    refresh_access_token,
)
from tests.support.upstream import UpstreamError, UpstreamServer

pytestmark = pytest.mark.integration

REDIRECT_URI = "http://127.0.0.1:12345/callback"
RESOURCE = "http://127.0.0.1:9999/mcp"

# What the official MCP Python SDK sends.
PUBLIC_NATIVE_CLIENT = {
    "response_types": ["code"],
    "scope": "openid offline_access mcp:execute",
    "client_name": "upstream smoke test",
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}


async def register(session: aiohttp.ClientSession, server: UpstreamServer, metadata: Any) -> Any:
    async with session.post(server.url + "/reg", json=metadata) as response:
        body = await response.json()
        assert response.status == 201, body
        return body


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_register_read_back_and_code_flow(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        before = await upstream.aclient_count(session)
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)
        assert await upstream.aclient_count(session) == before + 1
        assert client["client_id"] in upstream.client_ids()
        assert "client_secret" not in client

        headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
        async with session.get(client["registration_client_uri"], headers=headers) as response:
            read_back = await response.json()
            assert response.status == 200, read_back
        assert read_back["client_id"] == client["client_id"]
        assert read_back["redirect_uris"] == [REDIRECT_URI]

    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        REDIRECT_URI,
        scope="openid offline_access mcp:execute",
    )
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert "id_token" in tokens

    refreshed = await refresh_access_token(
        upstream.url, client["client_id"], tokens["refresh_token"]
    )
    assert refreshed["access_token"] != tokens["access_token"]


async def test_resource_indicator_gives_audience_bound_jwt(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)

    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        REDIRECT_URI,
        scope="mcp:execute offline_access",
        resource=RESOURCE,
    )
    claims = jwt_claims(tokens["access_token"])
    assert claims["aud"] == RESOURCE
    assert claims["iss"] == upstream.issuer
    assert "mcp:execute" in claims["scope"].split()
    assert tokens["refresh_token"]

    refreshed = await refresh_access_token(
        upstream.url, client["client_id"], tokens["refresh_token"], resource=RESOURCE
    )
    assert jwt_claims(refreshed["access_token"])["aud"] == RESOURCE


async def test_confidential_client_with_basic_auth(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(
            session,
            upstream,
            {
                "redirect_uris": ["https://app.example/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access mcp:execute",
            },
        )
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    tokens = await authorization_code_flow(
        upstream.url,
        client["client_id"],
        "https://app.example/callback",
        client_secret=client["client_secret"],
    )
    assert tokens["refresh_token"]


async def test_forwarded_headers_move_every_endpoint_to_the_gateway(
    upstream_factory: UpstreamFactory,
) -> None:
    gateway = "http://127.0.0.1:5555"
    server = upstream_factory(issuer=gateway)
    forwarded = {"X-Forwarded-Host": "127.0.0.1:5555", "X-Forwarded-Proto": "http"}
    async with aiohttp.ClientSession() as session:
        url = server.url + "/.well-known/openid-configuration"
        async with session.get(url, headers=forwarded) as response:
            metadata = await response.json()
        async with session.get(url) as response:
            direct = await response.json()

    assert metadata["issuer"] == gateway
    endpoints = {k: v for k, v in metadata.items() if k.endswith(("_endpoint", "_uri"))}
    assert "registration_endpoint" in endpoints
    assert "authorization_endpoint" in endpoints
    for name, value in endpoints.items():
        assert value.startswith(gateway + "/"), (name, value)
    # Without the headers the endpoints name the server itself: the gateway must send them.
    assert direct["issuer"] == gateway
    assert direct["token_endpoint"].startswith(server.url + "/")


async def test_flow_refuses_urls_outside_base_origin(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = await register(session, upstream, PUBLIC_NATIVE_CLIENT)
    # Discovery now names another origin, as behind a proxy that forwards the wrong host.
    headers = {"X-Forwarded-Host": "127.0.0.1:5555"}
    async with aiohttp.ClientSession(headers=headers) as session:
        with pytest.raises(OAuthFlowError, match="origin"):
            await authorization_code_flow(
                upstream.url, client["client_id"], REDIRECT_URI, session=session
            )


async def test_test_endpoints(upstream: UpstreamServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            upstream.url + "/__test/echo/a%2Fb?x=1&x=2",
            data=b"hello",
            headers=[("X-Twice", "1"), ("X-Twice", "2")],
        ) as response:
            echo = await response.json()
        assert echo["method"] == "POST"
        assert echo["path"] == "/__test/echo/a%2Fb?x=1&x=2"
        assert echo["headers"]["x-twice"] == ["1", "2"]
        assert echo["body"] == "hello"
        assert echo["body_length"] == 5

        async with session.get(upstream.url + "/__test/large?bytes=1000003") as response:
            assert "Content-Length" not in response.headers
            assert response.headers["Transfer-Encoding"] == "chunked"
            body = await response.read()
        assert len(body) == 1000003
        assert body == (b"abcdefghij" * 100001)[:1000003]

        async with session.get(upstream.url + "/__test/cookies") as response:
            assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
            assert response.headers.getall("X-Multi") == ["one", "two"]

        async with session.get(
            upstream.url + "/__test/redirect", allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/somewhere-else"

        async with session.post(upstream.url + "/__test/slow?ms=50", data=b"x") as response:
            assert await response.json() == {"slow": True, "ms": 50, "body_length": 1}


# ---------------------------------------------------------------- hostile input
#
# The server is also what the quick start runs, so no request may stop it: each batch goes
# over raw TCP straight to a server of its own (a crash must not break other tests), then the
# server must still serve discovery.

HEAD_END = b"Host: upstream.test\r\nConnection: close\r\n\r\n"
# A status the server must answer with; ANY_ANSWER accepts any status below 500 or none at all
# (e.g. a lone empty line leaves the server waiting for a request).
ANY_ANSWER = None


def raw_get(target: bytes, extra_headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + extra_headers + HEAD_END


def raw_post(path: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nContent-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + HEAD_END + body
    )


def raw_chunked(path: bytes, chunks: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nContent-Type: " + content_type + b"\r\n"
        b"Transfer-Encoding: chunked\r\n" + HEAD_END + chunks
    )


NESTED_ARRAYS = b"[" * 60_000 + b"]" * 60_000
NESTED_OBJECTS = b'{"a":' * 5_000 + b"1" + b"}" * 5_000

# (name, bytes sent, expected status or ANY_ANSWER)
REQUEST_TARGETS = [
    ("protocol-relative bad port", raw_get(b"//h:99999/x"), 400),
    ("protocol-relative broken ipv6", raw_get(b"//[::1/x"), 400),
    ("absolute broken ipv6", raw_get(b"http://[/x"), 400),
    ("absolute-form bad port", raw_get(b"http://evil:99999/"), 400),
    ("absolute-form bad port on test path", raw_get(b"http://evil:0x/__test/clients"), 400),
    ("bad percent escape", raw_get(b"/%zz"), ANY_ANSWER),
    ("percent-encoded NUL", raw_get(b"/%00"), ANY_ANSWER),
    ("bad escapes in the query", raw_get(b"/auth?client_id=%zz&redirect_uri=%&scope=%ff"), 400),
    ("bad escapes on a test path", raw_get(b"/__test/%zz/%00"), 404),
    ("asterisk-form", raw_get(b"*"), ANY_ANSWER),
    ("long path", raw_get(b"/" + b"a" * 10_000), 404),
    ("path longer than the header limit", raw_get(b"/" + b"a" * 100_000), 431),
    ("raw NUL in the target", raw_get(b"/\x00"), 400),
    ("raw non-ASCII in the target", raw_get(b"/\xff\xfe"), 400),
    ("unknown HTTP version", b"GET / HTTP/9.9\r\n" + HEAD_END, 400),
    ("unknown method", b"BREW / HTTP/1.1\r\n" + HEAD_END, 400),
    ("CONNECT", b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", 405),
]
HEADERS = [
    ("control byte in a header name", raw_get(b"/", b"X-Bad\x01: v\r\n"), 400),
    ("NUL in a header value", raw_get(b"/", b"X-Bad: v\x00x\r\n"), 400),
    ("DEL in X-Forwarded-Proto", raw_get(b"/", b"X-Forwarded-Proto: \x7f\r\n"), 400),
    ("obsolete line folding", raw_get(b"/", b"X-Folded: a\r\n b\r\n"), 400),
    ("space before the colon", raw_get(b"/", b"X-Bad : v\r\n"), 400),
    ("header larger than the limit", raw_get(b"/", b"X-Big: " + b"a" * 20_000 + b"\r\n"), 431),
    (
        "forwarded host with a bad port",
        raw_get(b"/.well-known/openid-configuration", b"X-Forwarded-Host: h:99999\r\n"),
        400,
    ),
    (
        "forwarded host that is not a host",
        raw_get(b"/.well-known/openid-configuration", b"X-Forwarded-Host: [\r\n"),
        400,
    ),
    (
        "forwarded host with a space",
        raw_get(b"/.well-known/openid-configuration", b"X-Forwarded-Host: a b, c\r\n"),
        400,
    ),
    (
        "forwarded proto that is not HTTP",
        raw_get(b"/.well-known/openid-configuration", b"X-Forwarded-Proto: javascript\r\n"),
        400,
    ),
    (
        "Host that is not a host",
        b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: [::1\r\n"
        b"Connection: close\r\n\r\n",
        400,
    ),
    ("no Host at all", b"GET /.well-known/openid-configuration HTTP/1.0\r\n\r\n", ANY_ANSWER),
    ("undecodable cookies", raw_get(b"/auth", b"Cookie: _session=%zz; _interaction=\xff\r\n"), 400),
    ("upgrade without a handler", raw_get(b"/", b"Upgrade: websocket\r\n"), 404),
    (
        "Content-Length and Transfer-Encoding",
        b"POST /reg HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        + HEAD_END
        + b"0\r\n\r\n",
        400,
    ),
    (
        "two different Content-Lengths",
        b"POST /reg HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n" + HEAD_END + b"abcd",
        400,
    ),
    (
        "Content-Length beyond any integer",
        b"POST /reg HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n" + HEAD_END + b"{",
        400,
    ),
]
BODIES = [
    ("bad chunk size to /reg", raw_chunked(b"/reg", b"zz\r\n{}\r\n0\r\n\r\n"), 400),
    ("chunk without its CRLF to /reg", raw_chunked(b"/reg", b"2\r\n{}XX0\r\n\r\n"), 400),
    (
        "bad chunk after a good one to /token",
        raw_chunked(b"/token", b"5\r\ngrant\r\nZZZ\r\n", b"application/x-www-form-urlencoded"),
        400,
    ),
    ("bad chunk to a test endpoint", raw_chunked(b"/__test/echo", b"3\r\nabc\r\nxyz\r\n"), 400),
    ("non-JSON to /reg", raw_post(b"/reg", b"{abc}"), 400),
    ("truncated JSON to /reg", raw_post(b"/reg", b'{"redirect_uris": ['), 400),
    ("invalid UTF-8 to /reg", raw_post(b"/reg", b"\xff\xfe\x00\x00"), 400),
    ("JSON that is not an object to /reg", raw_post(b"/reg", b"[1, 2]"), 400),
    ("deeply nested arrays to /reg", raw_post(b"/reg", NESTED_ARRAYS), 400),
    ("deeply nested objects to /reg", raw_post(b"/reg", NESTED_OBJECTS), 400),
    ("unknown charset to /reg", raw_post(b"/reg", b"{}", b"application/json; charset=utf-7"), 400),
    ("truncated JSON to /token", raw_post(b"/token", b"[", b"application/json"), 400),
    (
        "bad escapes to /token",
        raw_post(b"/token", b"%zz=%ff&&grant_type=%", b"application/x-www-form-urlencoded"),
        400,
    ),
    (
        "bad Basic credentials to /token",
        b"POST /token HTTP/1.1\r\nAuthorization: Basic %%%\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n"
        + HEAD_END
        + b"grant_type=client_credentials",
        400,
    ),
]
GARBAGE = [
    ("TLS client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("empty line", b"\r\n", ANY_ANSWER),
    ("lone newline", b"\n", ANY_ANSWER),
    ("nothing at all", b"", ANY_ANSWER),
    ("binary noise", bytes(range(256)) * 4, 400),
    ("empty line before a request", b"\r\n" + raw_get(b"/.well-known/openid-configuration"), 200),
]
BATCHES = {
    "request targets": REQUEST_TARGETS,
    "headers": HEADERS,
    "bodies": BODIES,
    "garbage": GARBAGE,
}
# Cases that must leave the connection open and then be cut by the client, mid-request.
ABANDONED = [
    b"POST /reg HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ngra",
    b"POST /__test/echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
    b"POST /__test/slow?ms=5000 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    b"GET /__test/large?bytes=100000000 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /.well-known/openid-config",
]


def exchange(port: int, raw: bytes, *, timeout: float = 5.0, quiet: float = 0.5) -> bytes:
    """Send ``raw`` and return what comes back until the server closes the connection.

    A connection that stays silent for ``quiet`` seconds after sending ends the read (the
    server may rightly wait for the rest of a request that never comes).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer (and stop reading) before all of a huge request is sent.
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        sock.settimeout(quiet)
        received = bytearray()
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received.extend(chunk)
                sock.settimeout(timeout)
        return bytes(received)


def status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match.group(1)) if match else None


def assert_serves(server: UpstreamServer, after: str) -> None:
    assert server.running, f"the server died after {after}:\n{server.output()}"
    url = server.url + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, after
        assert json.loads(response.read())["issuer"] == server.issuer


@pytest.mark.parametrize("batch", list(BATCHES))
def test_hostile_requests_are_answered_and_the_server_lives(
    upstream_factory: UpstreamFactory, batch: str
) -> None:
    server = upstream_factory()
    for name, raw, expected in BATCHES[batch]:
        answer = exchange(server.port, raw)
        assert server.running, f"the server died on {name!r}:\n{server.output()}"
        status = status_of(answer)
        if expected is ANY_ANSWER:
            assert answer == b"" or (status is not None and status < 500), (name, answer[:300])
        else:
            assert status == expected, (name, answer[:300])
        if status == 400 and b"Connection: close" in answer and b"Date:" not in answer:
            # Our own answer to malformed HTTP: a JSON OAuth error, then the connection ends.
            body = answer.partition(b"\r\n\r\n")[2]
            assert json.loads(body)["error"] == "invalid_request", (name, body)
    assert_serves(server, f"the {batch} batch")


def test_unparsable_target_gets_a_json_400(
    upstream_factory: UpstreamFactory,
) -> None:
    server = upstream_factory()
    for target in (b"//h:99999/x", b"//[::1/x", b"http://[/x", b"http://evil:99999/"):
        answer = exchange(server.port, raw_get(target))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert status_of(head) == 400, answer
        assert b"application/json" in head
        assert json.loads(body)["error"] == "invalid_request"
    # Two requests on one connection: after the 400 the server closes cleanly.
    keep_alive = b"GET //h:99999/x HTTP/1.1\r\nHost: x\r\n\r\n" + raw_get(b"/__test/clients")
    answer = exchange(server.port, keep_alive)
    assert status_of(answer) == 400
    assert b"Connection: close" in answer
    assert_serves(server, "unparsable targets")


def test_malformed_http_gets_400_with_connection_close(upstream_factory: UpstreamFactory) -> None:
    server = upstream_factory()
    answer = exchange(server.port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {
        "error": "invalid_request",
        "error_description": "malformed HTTP request (HPE_INVALID_METHOD)",
    }
    assert_serves(server, "TLS bytes")


def test_requests_abandoned_midway_do_not_hurt(upstream_factory: UpstreamFactory) -> None:
    server = upstream_factory()
    for raw in ABANDONED:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(raw)
            time.sleep(0.05)
            # SO_LINGER 0: close with a reset, the rudest way to leave.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert server.running, f"the server died on {raw[:40]!r}:\n{server.output()}"
    time.sleep(0.2)
    assert_serves(server, "abandoned requests")


def test_every_hostile_request_at_once(upstream_factory: UpstreamFactory) -> None:
    server = upstream_factory()
    cases = [raw for batch in BATCHES.values() for _, raw, _ in batch] * 3
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda raw: exchange(server.port, raw), cases))
    assert len(answers) == len(cases)
    assert_serves(server, "all hostile requests at once")
    assert "uncaughtException" not in server.output()
    assert "unhandledRejection" not in server.output()


def test_start_up_errors_still_end_the_process(upstream_factory: UpstreamFactory) -> None:
    # The last-resort exception logger must not keep a server that cannot start alive.
    with pytest.raises(UpstreamError, match="exited with 1 before READY") as error:
        upstream_factory(issuer="not-a-url")
    assert "Issuer Identifier must be a valid web uri" in str(error.value)
