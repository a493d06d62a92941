"""Unit tests for gateway.http.protocol: request-line recovery, the refusal chosen for each
parser error, and the protocol itself on a tiny in-process app (no upstream)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from gateway.audit.events import AuditRecord
from gateway.http.protocol import (
    RECENT_LIMIT,
    GatewayServer,
    RequestLine,
    answer_status,
    recover_request_line,
    refusal,
    serve_with_gateway_protocol,
)
from gateway.http.routes import Router
from gateway.policy.loader import policy_from_mapping
from gateway.policy.policies import Policies
from gateway.profiles.generic import GenericProfile
from gateway.state import GATEWAY

POLICY = policy_from_mapping({"version": 1})

# ---------------------------------------------------------------------- recover_request_line


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"POST /reg HTTP/1.1\r\nHost: x\r\n\r\n", RequestLine("POST", "/reg", "HTTP/1.1")),
        (b"GET / HTTP/1.0\r\n", RequestLine("GET", "/", "HTTP/1.0")),
        (b"\r\n\r\nPOST /reg HTTP/1.1\r\n", RequestLine("POST", "/reg", "HTTP/1.1")),
        (b"POST /reg HTTP/1.1\nHost: x\n", RequestLine("POST", "/reg", "HTTP/1.1")),
        (b"POST /reg HTTP/1.7\r\n", RequestLine("POST", "/reg", "HTTP/1.7")),
        (b"PROPFIND /a?b=c HTTP/1.1\r\n", RequestLine("PROPFIND", "/a?b=c", "HTTP/1.1")),
        (
            b"POST http://evil.example/reg HTTP/1.1\r\n",
            RequestLine("POST", "http://evil.example/reg", "HTTP/1.1"),
        ),
        (b"POST /re\xffg HTTP/1.1\r\n", RequestLine("POST", "/re%FFg", "HTTP/1.1")),
        (b"GET /a\x01b HTTP/1.1\r\n", None),  # a control character is no target
        (b"OPTIONS * HTTP/1.1\r\n", RequestLine("OPTIONS", "*", "HTTP/1.1")),
    ],
    ids=[
        "plain",
        "http-1.0",
        "leading-empty-lines",
        "bare-lf",
        "unknown-version",
        "extension-method",
        "absolute-form",
        "non-utf8-target",
        "ctl-in-target",
        "asterisk-form",
    ],
)
def test_recover_request_line(data, expected):
    assert recover_request_line(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"POST /reg HTTP/1.1",  # not ended within the buffer
        b"POST /reg HTTP/1.1x\r\n",
        b"POST /reg HTTX/1.1\r\n",
        b"POST /reg\r\n",
        b"P(ST /reg HTTP/1.1\r\n",
        b"POST  /reg HTTP/1.1\r\n",
        b"POST /reg HTTP/1.1 \r\n",
        b"POST\t/reg HTTP/1.1\r\n",
        b"POST /r\reg HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        b"X-A: 1\r\nPOST /reg HTTP/1.1\r\n",  # later lines are never guessed from
        b"garbage\r\n\r\nPOST /reg HTTP/1.1\r\n",
    ],
)
def test_no_request_line_is_guessed(data):
    assert recover_request_line(data) is None


def test_recovered_target_is_ascii():
    line = recover_request_line(b"GET /\xc3\xa9?q=\xff HTTP/1.1\r\n")
    assert line is not None
    assert line.target == "/%C3%A9?q=%FF"
    assert line.target.isascii()


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/reg", "/reg"),
        ("/reg?x=1", "/reg"),
        ("/reg#frag", "/reg"),
        ("/?x", "/"),
        ("http://evil.example/reg?x", "/reg"),
        ("http://evil.example//REG/?a=b", "//REG/"),
        ("http://evil.example", "/"),
        ("http://evil.example?x", "/"),
        ("*", "*"),
        ("example.com:443", "example.com:443"),
    ],
)
def test_request_line_path(target, path):
    assert RequestLine("GET", target, "HTTP/1.1").path == path


# ---------------------------------------------------------------------- refusal


TOKEN = "s3cr3t-token-value"


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (BadHttpMessage(f"Invalid character in chunk size:\n\n  b'{TOKEN}'"), "chunk size"),
        (BadHttpMessage(f"Chunk size overflow:\n\n  b'{TOKEN}'"), "chunk size"),
        (BadHttpMessage(f"Expected LF after chunk data:\n\n  b'{TOKEN}'"), "chunked framing"),
        (
            BadHttpMessage(f"Transfer-Encoding can't be present with Content-Length:\n {TOKEN}"),
            "both Transfer-Encoding and Content-Length",
        ),
        (
            BadHttpMessage(f"Invalid `Transfer-Encoding` header value:\n\n  b'{TOKEN}'"),
            "Transfer-Encoding",
        ),
        (BadHttpMessage(f"Duplicate Content-Length:\n\n  b'{TOKEN}'"), "Content-Length"),
        (BadHttpMessage("Duplicate 'Content-Type' header found."), "repeated header"),
        (BadHttpMessage("Too many headers received"), "too many header fields"),
        (
            BadHttpMessage(f"Unexpected whitespace after header value:\n\n  b'{TOKEN}'"),
            "line folding",
        ),
        (BadHttpMessage(f"Missing expected LF after header value:\n {TOKEN}"), "bare CR"),
        (BadHttpMessage(f"Invalid header value char:\n\n  b'{TOKEN}'"), "forbidden character"),
        (BadHttpMessage(f"Invalid header token:\n\n  b'{TOKEN}'"), "header field name"),
        (LineTooLong(TOKEN.encode(), 8190), "longer than the gateway accepts"),
        (InvalidURLError(f"Invalid char in url path:\n\n  b'{TOKEN}'"), "request target"),
        (BadHttpMethod(f"{TOKEN} /x"), "invalid method"),
        (BadHttpMethod(error="Received HTTPS traffic on an HTTP port"), "TLS"),
        (BadStatusLine(error=f"Bad status line:\n  Invalid HTTP version:\n {TOKEN}"), "line"),
        (InvalidHeader(TOKEN.encode()), "invalid header field"),
        (BadHttpMessage(f"Something new:\n {TOKEN}"), "HTTP framing is invalid"),
    ],
)
def test_refusal_describes_without_quoting(exc, words):
    error = refusal(exc)
    assert error.rule == "request.malformed"
    assert (error.status, error.error) == (400, "invalid_request")
    assert error.description.startswith("the request's HTTP framing is invalid")
    assert words in error.description
    assert TOKEN not in error.description
    assert "install" not in error.description.lower()


def test_a_content_coding_is_415_content_encoding():
    exc = ContentEncodingError("Can not decode content-encoding: brotli (br). Please install")
    error = refusal(exc)
    assert (error.rule, error.status, error.error) == (
        "request.content_encoding",
        415,
        "invalid_request",
    )
    assert "install" not in error.description.lower()
    assert answer_status(error, 400) == 415


@pytest.mark.parametrize(("parser", "answered"), [(400, 400), (413, 413), (431, 431), (500, 400)])
def test_answer_status_keeps_a_4xx(parser, answered):
    assert answer_status(refusal(BadHttpMessage("x")), parser) == answered


# ---------------------------------------------------------------------- the protocol


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        self.records.append(record)


async def echo(request: web.Request) -> web.Response:
    try:
        body = await asyncio.wait_for(request.read(), 0.5)
    except TimeoutError:
        return web.Response(status=408, text="body timeout")
    except HttpProcessingError:
        return web.Response(status=400, text="bad framing")
    return web.Response(text=f"{request.method} {request.raw_path} {len(body)}")


@pytest.fixture
async def tiny(aiohttp_server):
    """A bare app served by the gateway's protocol, with ``/reg`` as registration path."""
    app = web.Application()
    serve_with_gateway_protocol(app)
    audit = FakeAudit()
    app[GATEWAY] = SimpleNamespace(  # type: ignore[misc]
        router=Router(GenericProfile(["/reg"])), audit=audit, policies=Policies(POLICY)
    )
    app.router.add_route("*", "/{tail:.*}", echo)
    server = await aiohttp_server(app)
    return SimpleNamespace(server=server, audit=audit)


async def exchange(server, *parts: bytes, until_closed: bool = True) -> bytes:
    """Write ``parts`` one read apart; read until the server closes (or, if not
    ``until_closed``, for a second)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    raw = b""
    try:
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(0.05)
            writer.write(part)
            await writer.drain()
        with contextlib.nullcontext() if until_closed else contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5 if until_closed else 1):
                while chunk := await reader.read(65536):
                    raw += chunk
        return raw
    finally:
        writer.close()
        await writer.wait_closed()


def statuses(raw: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


async def test_the_server_is_the_gateways(tiny):
    assert isinstance(tiny.server.runner.server, GatewayServer)


async def test_refusal_is_json_and_audited(tiny):
    raw = await exchange(tiny.server, b"POST /reg HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert statuses(raw) == [400]
    assert b"\r\nContent-Type: application/json" in head
    assert b"\r\nServer: dcr-gateway" in head
    assert json.loads(body)["error"] == "invalid_request"
    (record,) = tiny.audit.records
    assert (record.event, record.method, record.path) == ("registration", "POST", "/reg")
    assert (record.decision, record.rule, record.status) == ("denied", "request.malformed", 400)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST http://x/reg?a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"\r\nPOST /REG/ HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"POST /reg?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["absolute-form", "leading-crlf-and-spelling", "non-utf8-query"],
)
async def test_registration_spellings_are_audited(tiny, request_bytes):
    assert statuses(await exchange(tiny.server, request_bytes)) == [400]
    assert [r.rule for r in tiny.audit.records] == ["request.malformed"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"OPTIONS /reg HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",  # a CORS preflight
        b"POST /other HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"P(ST /reg HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["options", "other-path", "bad-method"],
)
async def test_other_targets_are_not_audited(tiny, request_bytes):
    assert statuses(await exchange(tiny.server, request_bytes)) == [400]
    assert tiny.audit.records == []


@pytest.mark.parametrize(
    ("method", "event"),
    [("PUT", "client.updated"), ("GET", "client.read"), ("POST", "client.management")],
)
async def test_management_targets_are_audited_as_management(tiny, method, event):
    request_bytes = f"{method} /reg/client-1 HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"
    assert statuses(await exchange(tiny.server, request_bytes.encode())) == [400]
    assert [(r.event, r.client_id, r.rule) for r in tiny.audit.records] == [
        (event, "client-1", "request.malformed")
    ]


async def test_a_body_hiding_a_registration_is_not_attributed_to_it(tiny):
    # CL.TE: the refused request is the first one, whatever its body contains.
    hidden = b"POST /reg HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    body = b"0\r\n\r\n" + hidden
    request = (
        b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" % len(body)
    ) + body
    assert statuses(await exchange(tiny.server, request)) == [400]
    assert tiny.audit.records == []


async def test_pipelined_reads_attribute_the_refused_one(tiny):
    good = b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    bad = b"POST /reg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    raw = await exchange(tiny.server, good, bad)
    assert statuses(raw) == [200, 400]
    assert b"POST /other 2" in raw
    assert [(r.path, r.rule) for r in tiny.audit.records] == [("/reg", "request.malformed")]


async def test_a_body_over_several_reads_then_a_refusal(tiny):
    head = b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
    bad = b"POST /reg HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"
    raw = await exchange(tiny.server, head, b"abc", b"def", bad)
    assert statuses(raw) == [200, 400]
    assert [r.path for r in tiny.audit.records] == ["/reg"]


async def test_the_buffer_is_bounded(tiny):
    # A request line the buffer cannot hold is not recovered: nothing is attributed.
    target = b"/reg?" + b"q" * RECENT_LIMIT
    raw = await exchange(tiny.server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [400]
    assert tiny.audit.records == []


async def test_a_refusal_in_a_body_under_way_is_not_audited_again(tiny):
    # The handler reading that body owns the request; a second event would be a lie.  The
    # protocol hands the framing error to the body, so the answer comes at once (400).
    head = b"POST /reg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
    raw = await exchange(tiny.server, head, b"zz\r\n\r\n", until_closed=False)
    assert statuses(raw) == [400]
    assert tiny.audit.records == []


# --- the catch-all shortcut -------------------------------------------------------------


async def _routed_app(aiohttp_server, *, shortcut: bool):
    """``/-/own`` and ``/-/{tail}`` are routed; everything else is the catch-all, taken
    directly (``shortcut``) or through aiohttp's router."""

    async def own(request: web.Request) -> web.Response:
        return web.Response(text="own")

    async def catch_all(request: web.Request) -> web.Response:
        assert request.app is app  # the match info knows its application
        body = await request.read()
        return web.Response(text=f"catch-all {request.method} {request.raw_path} {len(body)}")

    app = web.Application()
    app.router.add_get("/-/own", own)
    app.router.add_route("*", "/-/{tail:.*}", own)
    route = app.router.add_route("*", "/{tail:.*}", catch_all)
    serve_with_gateway_protocol(app, catch_all=route if shortcut else None)
    return await aiohttp_server(app)


@pytest.mark.parametrize(
    "target",
    [
        "/x",
        "/",
        "//x",
        "/x?y=%2D",
        "/-/own",
        "/%2D/own",
        "/%2d/own",
        "/-x",
        "/-",
        "/a/-/own",
        "/%41",
        "/a%0Ab",
        "/a%0ab?c",
        "/a%0Db",
        "/a?b=%0A",
        "http://h/x",
        "http://h/-/own",
    ],
)
@pytest.mark.parametrize("expect", [False, True])
async def test_the_shortcut_answers_as_the_router_does(aiohttp_server, target, expect):
    answers = []
    for shortcut in (False, True):
        server = await _routed_app(aiohttp_server, shortcut=shortcut)
        head = f"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n"
        if expect:
            head += "Expect: 100-continue\r\n"
        raw = await exchange(server, (head + "\r\nabc").encode())
        answers.append((statuses(raw), raw.rsplit(b"\r\n\r\n", 1)[-1]))
    assert answers[0] == answers[1]
    assert answers[1][0][-1] in (200, 400, 404)


async def test_the_shortcut_refuses_an_app_with_middlewares():
    @web.middleware
    async def passing(request, handler):
        return await handler(request)

    app = web.Application(middlewares=[passing])
    route = app.router.add_route("*", "/{tail:.*}", echo)
    with pytest.raises(ValueError, match="middlewares"):
        serve_with_gateway_protocol(app, catch_all=route)
