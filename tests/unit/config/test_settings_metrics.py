"""``metrics``: on the main listener by default; the admin listener and token only where
they exist."""

from __future__ import annotations

from pathlib import Path

from gateway.config.settings import MetricsSettings, Settings, read_settings
from gateway.config.yamlsource import Problem, parse_text

BASE = Path("/etc/dcr")
MINIMAL = "upstream:\n  url: http://127.0.0.1:3000\npolicy_file: policy.yaml\n"
TOKEN_ENV = {"ADMIN": "a" * 40}


def load(text: str) -> tuple[Settings, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(text, "config.yaml", problems, env={})
    return read_settings(document, BASE, problems, env=TOKEN_ENV), problems


def test_defaults_serve_metrics_on_the_main_listener_without_a_token() -> None:
    settings, problems = load(MINIMAL)
    assert problems == []
    assert settings.metrics == MetricsSettings(True, "main", False)


def test_every_key_is_read() -> None:
    settings, problems = load(
        MINIMAL
        + "admin: {token_env: ADMIN, listen: {port: 9090}}\n"
        + "metrics: {enabled: false, listener: admin, require_admin_token: true}\n"
    )
    assert problems == []
    assert settings.metrics == MetricsSettings(False, "admin", True)


def test_the_admin_listener_and_token_must_exist_where_asked_for() -> None:
    _, problems = load(MINIMAL + "metrics: {listener: admin, require_admin_token: true, port: 1}\n")
    assert [(p.path, p.message) for p in problems] == [
        ("metrics.port", problems[0].message),
        ("metrics.listener", "admin needs admin.listen (a listener of its own)"),
        ("metrics.require_admin_token", "needs admin.token_env (the admin token)"),
    ]
    assert problems[0].message.startswith("unknown key")


def test_an_unknown_listener_is_a_problem() -> None:
    _, problems = load(MINIMAL + "metrics: {listener: public}\n")
    assert [p.path for p in problems] == ["metrics.listener"]
