"""``dcr-gateway healthcheck``: the port comes from the config, the answer decides."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from gateway.cli import main
from gateway.cli.healthcheck import health_url
from tests.unit.config.test_settings import MINIMAL, load


class Health(BaseHTTPRequestHandler):
    status = 200
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Health.status = 200
    Health.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_checks_the_configured_port(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    path = config(tmp_path, f"listen: {{host: 0.0.0.0, port: {port}}}\n" + MINIMAL)
    assert main(["healthcheck", "-c", str(path)]) == 0
    assert Health.seen == ["/-/healthz"]


def test_ready_asks_readiness(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    path = config(tmp_path, f"listen: {{host: 127.0.0.1, port: {port}}}\n" + MINIMAL)
    assert main(["healthcheck", "-c", str(path), "--ready"]) == 0
    assert Health.seen == ["/-/readyz"]


def test_an_answer_other_than_200_is_unhealthy(
    tmp_path: Path, server: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    Health.status = 503
    port = server.server_address[1]
    path = config(tmp_path, f"listen: {{host: 127.0.0.1, port: {port}}}\n" + MINIMAL)
    assert main(["healthcheck", "-c", str(path), "--ready"]) == 1
    assert "answered 503" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy(
    tmp_path: Path, server: ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    path = config(tmp_path, f"listen: {{host: 127.0.0.1, port: {port}}}\n" + MINIMAL)
    assert main(["healthcheck", "-c", str(path), "--timeout", "1"]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_an_unreadable_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["healthcheck", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_other_problems_do_not_hide_the_port(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    """A secret missing from the checking shell's environment is not the listener's business."""
    port = server.server_address[1]
    path = config(
        tmp_path,
        f"listen: {{host: 127.0.0.1, port: {port}}}\n{MINIMAL}admin: {{token_env: NOT_SET_HERE}}\n",
    )
    assert main(["healthcheck", "-c", str(path)]) == 0


@pytest.mark.parametrize(
    ("text", "ready", "url"),
    [
        ("listen: {host: 0.0.0.0, port: 8080}\n", False, "http://127.0.0.1:8080/-/healthz"),
        ("listen: {host: '::', port: 8080}\n", False, "http://[::1]:8080/-/healthz"),
        ("listen: {host: 10.0.0.5, port: 81}\n", True, "http://10.0.0.5:81/-/readyz"),
        (
            "listen: {host: 0.0.0.0, port: 8080}\n"
            "admin: {listen: {host: 0.0.0.0, port: 9090}, serve_health: true}\n",
            True,
            "http://127.0.0.1:9090/-/readyz",
        ),
        (
            "listen: {host: 0.0.0.0, port: 8080}\n"
            "admin: {listen: {host: 0.0.0.0, port: 9090}, serve_health: true}\n",
            False,
            "http://127.0.0.1:8080/-/healthz",
        ),
        (
            "listen: {host: 0.0.0.0, port: 8080}\nadmin: {listen: {port: 9090}}\n",
            True,
            "http://127.0.0.1:8080/-/readyz",
        ),
    ],
)
def test_health_url(text: str, ready: bool, url: str) -> None:
    settings, problems = load(text + MINIMAL)
    assert problems == []
    assert health_url(settings, ready=ready) == url
