"""Requests aiohttp's HTTP parser refuses before any handler runs, against the real gateway.

Each is sent to the registration endpoint and to a pass-through path: both get the
gateway's JSON error (never aiohttp's text, never a 500) and a closed connection; only the
registration target gets an audit event (``request.malformed``, or
``request.content_encoding`` for a content coding the parser cannot decode).  Nothing the
client sent (a bearer token above all) reaches a log line or an audit event.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from tests.support.paths import ROOT
from tests.support.rawhttp import assert_parser_refusal, parse_replies, send_raw
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
BODY = json.dumps(
    {"client_name": "Malformed", "redirect_uris": ["https://app.example.com/cb"]}
).encode()
TOKEN = "tok_" + "9f3c1a7e5b2d4c6e8a0b1d3f5e7a9c2b"
TARGETS = {"registration": "/reg", "passthrough": "/__test/echo"}


@dataclass(frozen=True)
class Case:
    head: bytes  # the request line's tail and the header section, without the target
    status: int = 400
    rule: str = "request.malformed"
    words: str = ""  # expected in error_description
    query: bytes = b""  # appended to the target as sent
    version: bytes = b"HTTP/1.1"

    def request(self, target: str) -> bytes:
        return b"POST " + target.encode() + self.query + b" " + self.version + b"\r\n" + self.head


def chunked(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"Host: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + extra
        + b"Connection: close\r\n\r\n"
        + body
    )


def headers(*lines: bytes, body: bytes = b"{}") -> bytes:
    return (
        b"Host: x\r\nContent-Type: application/json\r\n"
        + b"".join(line + b"\r\n" for line in lines)
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


CASES = {
    "chunk-size-zz": Case(chunked(b"zz\r\n{}\r\n0\r\n\r\n"), words="chunk size"),
    "chunk-size-minus-1": Case(chunked(b"-1\r\n{}\r\n0\r\n\r\n"), words="chunk size"),
    "chunk-size-huge-hex": Case(chunked(b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n"), words="chunk size"),
    "chunk-size-no-crlf": Case(chunked(b"2{}\r\n0\r\n\r\n"), words="chunk size"),
    "chunk-data-no-crlf": Case(chunked(b"2\r\n{}0\r\n\r\n"), words="chunked framing"),
    "obs-fold": Case(headers(b"X-A: a", b" b"), words="line folding"),
    "header-over-limit": Case(headers(b"X-Big: " + b"a" * 9000), words="longer than"),
    "bare-cr": Case(headers(b"X-A: a\rX-Injected: 1"), words="bare CR"),
    "nul-in-header": Case(headers(b"X-A: a\x00b"), words="forbidden character"),
    "header-name-space": Case(headers(b"X-A : 1"), words="header field name"),
    "non-utf8-query": Case(headers(), query=b"?q=\xff\xfe", words="request target"),
    "content-encoding-br": Case(
        headers(b"Content-Encoding: br", body=b"\x8b\x00\x80{}\x03"),
        status=415,
        rule="request.content_encoding",
        words="Content-Encoding",
    ),
    "content-encoding-zstd": Case(
        headers(b"Content-Encoding: zstd", body=b"(\xb5/\xfd\x00X\x11\x00\x00{}"),
        status=415,
        rule="request.content_encoding",
        words="Content-Encoding",
    ),
    "chunked-and-content-length": Case(
        chunked(b"2\r\n{}\r\n0\r\n\r\n", b"Content-Length: 7\r\n"),
        words="both Transfer-Encoding and Content-Length",
    ),
    "two-transfer-encodings": Case(
        chunked(b"2\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n"),
        words="Transfer-Encoding",
    ),
    "duplicate-content-type": Case(headers(b"Content-Type: text/plain"), words="repeated"),
    "bad-http-version": Case(headers(), version=b"HTTP/1.7", words="request line"),
}


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("case", list(CASES))
async def test_parser_refusal_is_the_gateways(upstream, gateway_factory, case, kind):
    spec, target = CASES[case], TARGETS[kind]
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = await upstream.aclient_count()
    raw = await send_raw(gateway, spec.request(target))
    assert b"Python" not in raw and b"aiohttp" not in raw and b"install" not in raw, raw
    (reply,) = parse_replies(raw)
    answer = assert_parser_refusal(reply, spec.status)
    assert spec.words in answer["error_description"], answer
    assert await upstream.aclient_count() == before
    events = gateway.registrations()
    if kind == "passthrough":
        assert events == []
        return
    assert len(events) == 1, events
    event = events[0]
    assert (event["decision"], event["rule"], event["status"]) == ("denied", spec.rule, spec.status)
    assert (event["method"], event["path"]) == ("POST", "/reg")
    assert event["error"] == "invalid_request"
    assert event["request_id"] == reply.header("X-Request-ID")
    assert event["upstream_status"] is None


@pytest.mark.parametrize("kind", list(TARGETS))
async def test_pipelined_good_then_bad(upstream, gateway_factory, kind):
    """The good request (in a read of its own) is answered normally, then the bad one."""
    target = TARGETS[kind]
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    before = await upstream.aclient_count()
    good = (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nX-Request-ID: pipe-good\r\n\r\n"
    ).encode() + BODY
    bad = CASES["chunk-size-zz"].request(target)
    first, second = parse_replies(await send_raw(gateway, [good, bad]))
    assert first.status == (201 if kind == "registration" else 200), first
    assert_parser_refusal(second, 400)
    assert first.header("X-Request-ID") != second.header("X-Request-ID")
    events = gateway.registrations()
    if kind == "passthrough":
        assert events == []
        assert await upstream.aclient_count() == before
        return
    assert await upstream.aclient_count() == before + 1
    assert [(e["decision"], e["rule"]) for e in events] == [
        ("allowed", "allow.open"),
        ("denied", "request.malformed"),
    ]
    assert events[0]["client_request_id"] == "pipe-good"
    assert events[1]["request_id"] == second.header("X-Request-ID")


def authorized(case: str, target: str) -> bytes:
    """A malformed request whose ``Authorization`` header carries :data:`TOKEN`, placed
    where the parser quotes the raw bytes it refuses."""
    auth = b"Authorization: Bearer " + TOKEN.encode()
    line = b"POST " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    if case == "fold":  # the refused line is the token's own
        return line + auth + b"\r\n folded\r\nConnection: close\r\n\r\n"
    if case == "bare-cr":
        return line + auth + b"\rX: 1\r\nConnection: close\r\n\r\n"
    if case == "nul":
        return line + auth + b"\x00\r\nConnection: close\r\n\r\n"
    if case == "too-long":
        return line + auth + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n"
    if case == "in-target":
        query = b"?access_token=" + TOKEN.encode() + b"\xff"
        return b"POST " + target.encode() + query + b" HTTP/1.1\r\n"
    assert case == "chunk"
    framing = b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    return line + auth + framing + TOKEN.encode() + b"\r\n{}\r\n0\r\n\r\n"


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("case", ["fold", "bare-cr", "nul", "too-long", "chunk", "in-target"])
async def test_a_token_in_a_refused_request_is_logged_nowhere(
    upstream, gateway_factory, caplog, capsys, case, kind
):
    caplog.set_level(logging.DEBUG)
    gateway = await gateway_factory(upstream.url, policy=OPEN)
    capsys.readouterr()  # start-up lines
    caplog.clear()
    raw = await send_raw(gateway, authorized(case, TARGETS[kind]))
    (reply,) = parse_replies(raw)
    assert_parser_refusal(reply, 400)
    assert TOKEN.encode() not in raw

    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    refused = [json.loads(line) for line in captured.err.splitlines() if "refused" in line]
    assert len(refused) == 1, captured.err
    (entry,) = refused
    assert (entry["event"], entry["level"], entry["status"]) == (
        "request_refused_by_parser",
        "warning",
        400,
    )
    assert entry["request_id"] == reply.header("X-Request-ID")
    assert entry["peer"] == "127.0.0.1"
    assert entry["reason"] in ("BadHttpMessage", "LineTooLong", "InvalidURLError"), entry
    assert set(entry) <= {
        "event",
        "timestamp",
        "level",
        "status",
        "rule",
        "reason",
        "request_id",
        "peer",
        "audited",
    }, entry
    assert "Traceback" not in captured.err

    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert record.exc_info is None, record
        assert TOKEN not in (record.exc_text or "")
    assert TOKEN not in caplog.text
    assert not [r for r in caplog.records if r.name == "aiohttp.server"], caplog.records

    assert TOKEN not in gateway.audit_text()
    assert len(gateway.registrations()) == (1 if kind == "registration" else 0)


# ---------------------------------------------------------------------- as production runs it


def wait_for(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def send_blocking(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_dcr_gateway_run_answers_parser_refusals(upstream_factory, tmp_path):
    """``web.run_app`` (``dcr-gateway run``) serves with the gateway's protocol too."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = upstream_factory(issuer=url)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\npublic_url: {url}\n"
        f"upstream: {{url: '{server.url}'}}\n"
        f"policy_file: {ROOT / 'policies' / 'default.yaml'}\n"
        "audit: {sink: stdout}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(url + "/-/healthz")
        replies = [
            parse_replies(send_blocking(port, authorized("chunk", "/reg"))),
            parse_replies(send_blocking(port, CASES["content-encoding-br"].request("/reg"))),
            parse_replies(send_blocking(port, authorized("fold", "/__test/echo"))),
        ]
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    [(chunk,), (brotli,), (fold,)] = replies
    assert_parser_refusal(chunk, 400)
    assert_parser_refusal(brotli, 415)
    assert_parser_refusal(fold, 400)
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    events = [e for e in events if e["event"] != "policy.loaded"]  # the start-up one
    assert [(e["rule"], e["status"]) for e in events] == [
        ("request.malformed", 400),
        ("request.content_encoding", 415),
    ]
    assert [e["request_id"] for e in events] == [
        chunk.header("X-Request-ID"),
        brotli.header("X-Request-ID"),
    ]
    refused = [json.loads(line) for line in stderr.splitlines() if "refused_by_parser" in line]
    assert [e["audited"] for e in refused] == [True, True, False]
    assert TOKEN not in stdout + stderr
    assert "Traceback" not in stderr
    assert "Error handling request" not in stderr
