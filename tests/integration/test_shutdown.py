"""Graceful shutdown and log rotation of ``dcr-gateway run``, as a process receives them.

On SIGTERM the listener closes at once (new connections are refused), requests in flight
finish (a slow pass-through answer, a registration whose body is still arriving), their
audit events are written, and the process exits 0.  On SIGUSR1 a file audit sink is
reopened: logrotate renames the file, and the next event lands in a new file at the
configured path.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway_process import GatewayProcess, start_gateway_process
from tests.support.rawhttp import parse_replies

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open"}
BODY = json.dumps(
    {
        "client_name": "shutdown test",
        "redirect_uris": ["http://127.0.0.1:43210/callback"],
        "token_endpoint_auth_method": "none",
    }
).encode()


def port_of(gateway: GatewayProcess) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def register(url: str) -> int:
    request = urllib.request.Request(
        url + "/reg", data=BODY, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def _started(upstream, tmp_path: Path, *, shutdown_timeout: str | None = None):
    """A gateway process in front of ``upstream`` (memory storage, an open policy), ready;
    with ``shutdown_timeout``, that ``server.shutdown_timeout``."""
    extra = (
        "" if shutdown_timeout is None else f"server: {{shutdown_timeout: {shutdown_timeout}}}\n"
    )
    return start_gateway_process(
        tmp_path,
        "g",
        upstream_url=upstream.url,
        policy=OPEN,
        storage="memory://",
        extra_config=extra,
    ).wait_ready()


def test_sigterm_finishes_requests_in_flight_then_exits_0(upstream, tmp_path: Path) -> None:
    gateway = _started(upstream, tmp_path, shutdown_timeout="20s")
    port = port_of(gateway)
    try:
        # 1. A pass-through request the upstream answers after 2.5 s.
        slow: dict[str, Any] = {}

        def fetch_slow() -> None:
            started = time.monotonic()
            with urllib.request.urlopen(gateway.url + "/__test/slow?ms=2500", timeout=30) as r:
                slow["status"] = r.status
                slow["body"] = json.loads(r.read())
            slow["seconds"] = time.monotonic() - started

        slow_thread = threading.Thread(target=fetch_slow)
        slow_thread.start()
        # 2. A registration whose body is still arriving.
        registration = socket.create_connection(("127.0.0.1", port), timeout=30)
        registration.sendall(
            b"POST /reg HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
            + BODY[:20]
        )
        time.sleep(0.5)  # both are in the gateway's hands now
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        # The listener is closed at once, while both requests are still in flight.
        deadline = time.monotonic() + 2
        while not connection_refused(port):
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        assert slow_thread.is_alive()
        assert gateway.process.poll() is None
        # The registration's body completes after the signal: it is still served.
        registration.sendall(BODY[20:])
        raw = b""
        while chunk := registration.recv(65536):
            raw += chunk
        registration.close()
        [reply] = parse_replies(raw)
        assert reply.status == 201, reply
        slow_thread.join(30)
        assert slow == {"status": 200, "body": slow["body"], "seconds": slow["seconds"]}
        assert slow["body"]["slow"] is True
        assert slow["seconds"] >= 2.4
        assert gateway.process.wait(30) == 0
        # Its audit event was written before the sink was closed.
        [event] = gateway.registrations()
        assert event["decision"] == "allowed"
        assert event["status"] == 201
        assert event["client_name"] == "shutdown test"
    finally:
        gateway.stop()


def test_requests_over_the_shutdown_timeout_are_cut_short(upstream, tmp_path: Path) -> None:
    gateway = _started(upstream, tmp_path, shutdown_timeout="1s")
    try:
        failed: list[BaseException] = []

        def fetch_slow() -> None:
            try:
                urllib.request.urlopen(gateway.url + "/__test/slow?ms=8000", timeout=30)
            except Exception as exc:  # the connection is closed without an answer
                failed.append(exc)

        thread = threading.Thread(target=fetch_slow)
        thread.start()
        time.sleep(0.5)
        assert gateway.process is not None
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(15) == 0
        assert time.monotonic() - started < 6  # not the 8 s the upstream would take
        thread.join(15)
        assert len(failed) == 1
    finally:
        gateway.stop()


def test_sigusr1_reopens_the_audit_file(upstream, tmp_path: Path) -> None:
    gateway = _started(upstream, tmp_path)
    try:
        assert register(gateway.url) == 201
        rotated = tmp_path / "g.audit.jsonl.1"
        gateway.audit_path.rename(rotated)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not gateway.audit_path.exists():  # reopened: a new, empty file at the path
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.05)
        assert register(gateway.url) == 201
        old = [json.loads(line) for line in rotated.read_text().splitlines()]
        # The start-up policy.loaded event and the registration were both written there.
        assert [e["event"] for e in old] == ["policy.loaded", "registration"]
        [event] = gateway.registrations()
        assert event["status"] == 201
        assert gateway.process.poll() is None  # SIGUSR1 did not stop it
    finally:
        assert gateway.stop() == 0


def test_sigterm_during_start_up_stops_the_discovery_wait(tmp_path: Path) -> None:
    """Start-up retries discovery for up to upstream.discovery_timeout (30 s here); a stop
    signal meanwhile ends it at once, cleanly."""
    gateway = start_gateway_process(
        tmp_path,
        "g",
        upstream_url="http://127.0.0.1:1",  # nothing listens there
        policy=OPEN,
        storage="memory://",
        extra_config="",
    )
    try:
        time.sleep(1.5)
        assert gateway.process is not None and gateway.process.poll() is None
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        gateway.stop()
