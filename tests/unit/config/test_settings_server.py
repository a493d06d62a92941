"""``server`` (workers, shutdown timeout) and ``admin.serve_health``: read once at load,
and the combinations that cannot work refused there with a clear message."""

from __future__ import annotations

import pytest

from gateway.config.settings import Server, workers_problem
from tests.unit.config.test_settings import MINIMAL, load, triples


def test_defaults_are_one_worker_and_ten_seconds() -> None:
    settings, problems = load(MINIMAL)
    assert problems == []
    assert settings.server == Server(workers=1, shutdown_timeout=10.0)
    assert settings.admin.serve_health is False


def test_workers_with_redis_and_a_shutdown_timeout() -> None:
    text = MINIMAL + "storage: redis://127.0.0.1:6379/0\n"
    text += "server: {workers: 4, shutdown_timeout: 30s}\n"
    settings, problems = load(text)
    assert problems == []
    assert settings.server == Server(workers=4, shutdown_timeout=30.0)


@pytest.mark.parametrize("storage", ["", "storage: memory://\n", "storage: MEMORY://\n"])
def test_several_workers_on_memory_storage_are_refused(storage: str) -> None:
    _, problems = load(MINIMAL + storage + "server: {workers: 2}\n")
    assert len(problems) == 1
    assert problems[0].path == "server.workers"
    assert "memory://" in problems[0].message
    assert "redis://" in problems[0].message


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("server: {workers: 0}", "server.workers", "must be at least 1"),
        ("server: {workers: 65}", "server.workers", "must be at most 64"),
        ("server: {workers: two}", "server.workers", "must be a whole number, not a string"),
        ("server: {shutdown_timeout: soon}", "server.shutdown_timeout", None),
        ("server: {graceful: 1s}", "server.graceful", None),
    ],
)
def test_bad_server_values(line: str, path: str, message: str | None) -> None:
    _, problems = load(MINIMAL + line + "\n")
    assert [p.path for p in problems] == [path]
    if message is not None:
        assert problems[0].message == message


def test_workers_problem_says_nothing_for_one_worker_or_shared_storage() -> None:
    assert workers_problem(1, "memory://") is None
    assert workers_problem(8, "redis+sentinel://h:26379/dcr") is None
    assert workers_problem(2, "memory://") is not None


def test_serve_health_with_an_admin_listener() -> None:
    settings, problems = load(
        MINIMAL + "admin: {listen: {host: 127.0.0.1, port: 9090}, serve_health: true}\n"
    )
    assert problems == []
    assert settings.admin.serve_health is True
    assert settings.admin.listen is not None and settings.admin.listen.port == 9090


def test_serve_health_without_an_admin_listener_is_refused() -> None:
    _, problems = load(MINIMAL + "admin: {serve_health: true}\n")
    assert triples(problems) == [
        (
            "admin.serve_health",
            "moves health to the admin listener: set admin.listen too",
            "config.yaml:4",
        )
    ]
