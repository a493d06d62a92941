"""``server.workers``: worker processes sharing the port (``SO_REUSEPORT``) under a parent
that forwards signals and exits when they have exited.  With a real ``redis-server``: the
workers share their state there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess, start_gateway_process

pytestmark = pytest.mark.integration

OPEN = {"version": 1, "mode": "open"}
BODY = json.dumps(
    {"client_name": "worker test", "redirect_uris": ["http://127.0.0.1:43210/callback"]}
).encode()
_TICK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def workers_of(gateway: GatewayProcess, count: int) -> list[int]:
    assert gateway.process is not None
    deadline = time.monotonic() + 10
    while len(pids := children(gateway.process.pid)) != count:
        assert time.monotonic() < deadline, (pids, gateway.log())
        time.sleep(0.05)
    return pids


def two_workers(upstream, redis_server, tmp_path: Path, extra: str = "") -> GatewayProcess:
    """A gateway of two workers on the real Redis, the open policy, both started (each
    wrote its start-up ``policy.loaded``, after which it handles SIGHUP and SIGUSR1)."""
    gateway = start_gateway_process(
        tmp_path,
        "g",
        upstream_url=upstream.url,
        policy=OPEN,
        storage=redis_server.url,
        extra_config=f"server: {{workers: 2{extra}}}\n",
    ).wait_ready()
    deadline = time.monotonic() + 20
    while len(_loaded(gateway, "startup")) < 2:
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.05)
    return gateway


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # a new connection each time
        response.read()
        return int(response.status)


def register(url: str) -> int:
    request = urllib.request.Request(
        url + "/reg", data=BODY, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_two_workers_serve_and_stop_together(upstream, redis_server, tmp_path: Path) -> None:
    gateway = two_workers(upstream, redis_server, tmp_path, ", shutdown_timeout: 5s")
    try:
        pids = workers_of(gateway, 2)
        before = {pid: cpu_seconds(pid) for pid in pids}
        assert all(get(gateway.url + "/__test/echo") == 200 for _ in range(300))
        assert all(register(gateway.url) == 201 for _ in range(10))
        # The kernel spread the connections over both workers: both did work.
        used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
        assert all(seconds > 0 for seconds in used.values()), used
        # Both append to one audit file, one whole line per event.
        assert len(gateway.registrations()) == 10
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(20) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # exited and reaped
        assert refused(gateway.url)
    finally:
        gateway.stop()


def test_a_worker_that_dies_stops_the_set(upstream, redis_server, tmp_path: Path) -> None:
    gateway = two_workers(upstream, redis_server, tmp_path)
    try:
        first, second = workers_of(gateway, 2)
        os.kill(first, signal.SIGKILL)
        assert gateway.process is not None
        assert gateway.process.wait(20) == 1  # restarted as a whole by what runs it
        assert not Path(f"/proc/{second}").exists()
    finally:
        gateway.stop()


def test_sigusr1_reaches_every_worker(upstream, redis_server, tmp_path: Path) -> None:
    gateway = two_workers(upstream, redis_server, tmp_path)
    try:
        workers_of(gateway, 2)
        assert register(gateway.url) == 201
        gateway.audit_path.rename(tmp_path / "rotated.jsonl")
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not gateway.audit_path.exists():
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.05)
        time.sleep(0.5)  # the second worker's reopen too
        # Whichever worker answers, its event goes to the new file.
        assert all(register(gateway.url) == 201 for _ in range(20))
        assert len(gateway.registrations()) == 20
    finally:
        assert gateway.stop() == 0


def test_sighup_reloads_the_policy_in_every_worker(upstream, redis_server, tmp_path: Path) -> None:
    """``kill -HUP <parent>``: each worker reloads the policy file (one ``policy.loaded``
    with ``trigger: signal`` each), and whichever answers refuses what the new policy
    refuses."""
    gateway = two_workers(upstream, redis_server, tmp_path)
    try:
        workers_of(gateway, 2)
        assert register(gateway.url) == 201
        (tmp_path / "g.policy.yaml").write_text(json.dumps({"version": 1, "mode": "disabled"}))
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while len(reloads := _loaded(gateway, "signal")) < 2:
            assert time.monotonic() < deadline, (reloads, gateway.log())
            time.sleep(0.05)
        assert len({e["policy_revision"] for e in reloads}) == 1  # the same files
        for _ in range(20):
            with pytest.raises(urllib.error.HTTPError) as refusal:
                register(gateway.url)
            assert refusal.value.code == 403
        assert gateway.process.poll() is None  # SIGHUP did not stop it
    finally:
        assert gateway.stop() == 0


def test_signals_while_workers_start_do_not_kill_them(
    upstream, redis_server, tmp_path: Path
) -> None:
    """SIGHUP and SIGUSR1 forwarded while the workers are still importing (before they
    handle them): ignored, not their default action (exit); the set starts and serves."""
    gateway = start_gateway_process(
        tmp_path,
        "g",
        upstream_url=upstream.url,
        policy=OPEN,
        storage=redis_server.url,
        extra_config="server: {workers: 2}\n",
    )
    try:
        workers_of(gateway, 2)
        assert gateway.process is not None
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP):
            gateway.process.send_signal(sig)
        gateway.wait_ready()
        assert all(register(gateway.url) == 201 for _ in range(6))
        assert len(children(gateway.process.pid)) == 2
    finally:
        assert gateway.stop() == 0


def _loaded(gateway: GatewayProcess, trigger: str) -> list[dict]:
    """The ``policy.loaded`` events with ``trigger`` (startup, signal ...)."""
    return [
        e
        for e in gateway.all_events()
        if e.get("event") == "policy.loaded" and e.get("trigger") == trigger
    ]


def test_several_workers_on_memory_storage_refuse_to_start(upstream, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    (tmp_path / "p.yaml").write_text(json.dumps(OPEN))
    config.write_text(f"upstream: {{url: '{upstream.url}'}}\npolicy_file: p.yaml\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "memory://" in result.stderr
    assert "redis://" in result.stderr
