"""``dcr-gateway run`` as an operator starts it: a process, a config file, discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.upstream import free_port

pytestmark = pytest.mark.integration


def wait_for(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_run_discovers_registration_and_audits_to_stdout(upstream_factory, tmp_path):
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
        request = urllib.request.Request(
            url + "/reg",
            data=json.dumps({"redirect_uris": ["https://evil.example/cb"]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["policy.loaded", "registration"]
    assert events[0]["trigger"] == "startup"
    assert [e["rule"] for e in events[1:]] == ["redirect_uri.not_allowed"]
    assert "registration_endpoint_discovered" in stderr


def run_gateway(config: Path) -> subprocess.CompletedProcess[str]:
    """``dcr-gateway run`` that is expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_run_refuses_to_start_without_a_registration_endpoint(tmp_path):
    dead = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: {{port: {free_port()}}}\n"
        f"upstream: {{url: 'http://127.0.0.1:{dead}', discovery_timeout: 1s}}\n"
        f"policy_file: {ROOT / 'policies' / 'default.yaml'}\n"
    )
    result = run_gateway(config)
    assert result.returncode == 1
    assert "startup_failed" in result.stderr
    assert "registration_paths" in result.stderr


def test_run_with_a_bad_config_exits_1(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("upstream: {}\n")
    result = run_gateway(config)
    assert result.returncode == 1
    assert "upstream.url: is required" in result.stderr
