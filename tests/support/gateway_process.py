"""``dcr-gateway run`` as a separate process, the way a replica is deployed: its own config
file, its own policy file, its own audit file, and whatever storage it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.upstream import free_port

START_TIMEOUT = 20.0


@dataclass
class GatewayProcess:
    name: str
    url: str
    config: Path
    audit_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def events(self) -> list[dict[str, Any]]:
        """Every audit event of a request the replica wrote so far (its sink is
        line-buffered, and an event is written before the answer is sent); the policy
        loads (``policy.*``) are in :meth:`all_events`."""
        return [e for e in self.all_events() if not str(e.get("event")).startswith("policy.")]

    def all_events(self) -> list[dict[str, Any]]:
        """Every audit event written so far, policy loads included."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def registrations(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == "registration"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> GatewayProcess:
        """Return once ``/-/readyz`` answers 200 (upstream and storage reachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(f"gateway {self.name} exited ({code}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/readyz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway {self.name} did not become ready:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL; the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        return process.returncode


def start_gateway_process(
    workdir: Path,
    name: str,
    *,
    upstream_url: str,
    policy: dict[str, Any],
    storage: str,
    extra_config: str = "",
) -> GatewayProcess:
    """Write ``<name>.config.yaml`` and ``<name>.policy.yaml`` in ``workdir`` and start
    ``python -m gateway run -c <config>`` (what the ``dcr-gateway`` script runs), without
    waiting: call :meth:`GatewayProcess.wait_ready` (start several first, then wait)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    policy_path = workdir / f"{name}.policy.yaml"
    policy_path.write_text(json.dumps(policy, indent=2))  # JSON is YAML
    audit_path = workdir / f"{name}.audit.jsonl"
    config = workdir / f"{name}.config.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"public_url: {url}\n"
        f"upstream: {{url: '{upstream_url}'}}\n"
        f"policy_file: {policy_path.name}\n"
        f"storage: '{storage}'\n"
        f"audit: {{sink: {audit_path.name}}}\n"
        "log_level: warning\n" + extra_config
    )
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return GatewayProcess(name, url, config, audit_path, log_path, process)
