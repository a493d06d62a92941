"""Unit tests for gateway.audit: one JSON event per registration, never a secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.audit import (
    REGISTRATION_EVENT,
    AuditLog,
    RegistrationRecord,
    configure_logging,
)

TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SECRETS = {
    "client_secret": "s3cr3t-client-secret",
    "registration_access_token": "rat-very-secret",
    "initial_access_token": "iat-very-secret",
    "authorization": "Bearer iat-very-secret",
    "jwks": {"keys": [{"kty": "oct", "k": "symmetric-key-secret"}]},
    "software_statement": "eyJhbGciOi.secret-statement.sig",
    "x_vendor_secret": "vendor-secret",
}
SAFE = {
    "client_name": "Claude",
    "software_id": "claude-desktop",
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid mcp",
}


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def record(**overrides: Any) -> RegistrationRecord:
    fields: dict[str, Any] = {
        "request_id": "rid-1",
        "client_ip": "203.0.113.9",
        "user_agent": "mcp-client/1.0",
        "method": "POST",
        "path": "/reg",
    }
    fields.update(overrides)
    return RegistrationRecord(**fields)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- RegistrationRecord --------------------------------------------------------------------


def test_record_defaults() -> None:
    fields = record().as_fields()
    assert fields["decision"] == "error"
    assert fields["matched"] == []
    assert fields["dropped_redirect_uris"] == []
    assert fields["client_disconnected"] is False
    assert all(
        fields[name] is None
        for name in ("rule", "error", "status", "client_id", "latency_ms", "redirect_uris")
    )


def test_note_metadata_copies_the_safe_fields() -> None:
    rec = record()
    rec.note_metadata({**SAFE, **SECRETS})
    assert rec.client_name == "Claude"
    assert rec.software_id == "claude-desktop"
    assert rec.redirect_uris == ["http://127.0.0.1:33418/callback"]
    assert rec.token_endpoint_auth_method == "none"
    assert rec.grant_types == ["authorization_code", "refresh_token"]
    assert rec.scope == "openid mcp"


@pytest.mark.parametrize("secret_field", sorted(SECRETS), ids=sorted(SECRETS))
def test_note_metadata_never_copies_other_fields(secret_field: str) -> None:
    rec = record()
    rec.note_metadata({**SAFE, secret_field: SECRETS[secret_field]})
    fields = rec.as_fields()
    assert secret_field not in fields
    assert json.dumps(SECRETS[secret_field]).strip('"') not in json.dumps(fields)


def test_record_has_no_field_for_secrets() -> None:
    names = set(record().as_fields())
    assert not names & {
        "client_secret",
        "registration_access_token",
        "initial_access_token",
        "authorization",
        "headers",
        "body",
        "metadata",
        "jwks",
    }


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, {"client_name": None, "redirect_uris": None, "grant_types": None, "scope": None}),
        (
            {"client_name": 5, "redirect_uris": "https://a/cb", "scope": ["a"]},
            {"client_name": None, "redirect_uris": None, "grant_types": None, "scope": None},
        ),
        (
            {"redirect_uris": ["https://a/cb", 5, None, "https://b/cb"], "grant_types": [1]},
            {
                "client_name": None,
                "redirect_uris": ["https://a/cb", "https://b/cb"],
                "grant_types": [],
                "scope": None,
            },
        ),
        (
            {"client_name": "n" * 5000, "scope": "s" * 2001},
            {
                "client_name": "n" * 2000,
                "redirect_uris": None,
                "grant_types": None,
                "scope": "s" * 2000,
            },
        ),
        (
            {"redirect_uris": [f"https://a/{i}" for i in range(80)]},
            {
                "client_name": None,
                "redirect_uris": [f"https://a/{i}" for i in range(50)],
                "grant_types": None,
                "scope": None,
            },
        ),
        (
            {"redirect_uris": ["u" * 3000]},
            {
                "client_name": None,
                "redirect_uris": ["u" * 2000],
                "grant_types": None,
                "scope": None,
            },
        ),
    ],
    ids=[
        "absent",
        "wrong-types",
        "non-strings-dropped-from-lists",
        "long-strings-cut",
        "at-most-50-items",
        "long-list-items-cut",
    ],
)
def test_note_metadata_bounds_and_types(metadata: dict[str, Any], expected: dict[str, Any]) -> None:
    rec = record()
    rec.note_metadata(metadata)
    fields = rec.as_fields()
    assert {name: fields[name] for name in expected} == expected


def test_note_metadata_copies_lists_not_references() -> None:
    uris = ["https://a/cb"]
    rec = record()
    rec.note_metadata({"redirect_uris": uris})
    uris.append("https://evil/cb")
    assert rec.redirect_uris == ["https://a/cb"]


# --- AuditLog ------------------------------------------------------------------------------


def test_file_sink_writes_one_json_object_per_line(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    try:
        first = record(request_id="rid-1", decision="allowed", status=201, client_id="c1")
        first.note_metadata({**SAFE, **SECRETS})
        audit.registration(first)
        audit.registration(record(request_id="rid-2", decision="denied", rule="policy.x"))
    finally:
        audit.close()

    events = read_lines(path)
    assert len(events) == 2
    for event in events:
        assert event["event"] == REGISTRATION_EVENT == "registration"
        assert TIMESTAMP_RE.fullmatch(event["timestamp"])
    assert {k: events[0][k] for k in first.as_fields()} == first.as_fields()
    assert events[0]["request_id"] == "rid-1"
    assert events[0]["client_id"] == "c1"
    assert events[0]["redirect_uris"] == SAFE["redirect_uris"]
    assert events[1]["request_id"] == "rid-2"
    assert events[1]["decision"] == "denied"
    assert events[1]["rule"] == "policy.x"
    text = path.read_text(encoding="utf-8")
    for secret in ("s3cr3t-client-secret", "rat-very-secret", "iat-very-secret", "vendor-secret"):
        assert secret not in text


def test_file_sink_appends(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event": "earlier"}\n', encoding="utf-8")
    audit = AuditLog(str(path))
    audit.registration(record())
    audit.close()
    events = read_lines(path)
    assert [e["event"] for e in events] == ["earlier", "registration"]


def test_event_is_written_before_close(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.registration(record())
    assert len(read_lines(path)) == 1  # line-buffered: visible without close()
    audit.close()


def test_unicode_is_escaped_into_ascii_json(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    rec = record()
    rec.note_metadata({"client_name": "Caf\u00e9\nX-Injected: 1"})
    audit.registration(rec)
    audit.close()
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    assert raw.isascii()
    assert read_lines(path)[0]["client_name"] == "Caf\u00e9\nX-Injected: 1"


@pytest.mark.parametrize("sink", ["stdout", "stderr"])
def test_stream_sinks(sink: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    audit = AuditLog(sink)
    audit.registration(record(request_id="rid-stream"))
    audit.close()
    captured = capsys.readouterr()
    text = captured.out if sink == "stdout" else captured.err
    event = json.loads(text.strip().splitlines()[-1])
    assert event["event"] == "registration"
    assert event["request_id"] == "rid-stream"
    assert audit.sink == sink


def test_close_is_idempotent_and_emit_after_close_does_not_raise(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.close()
    audit.close()
    audit.registration(record())  # the sink is closed: logged, never raised
    assert path.read_text(encoding="utf-8") == ""


def test_capture_logs_sees_the_event() -> None:
    configure_logging()
    audit = AuditLog("stdout")
    rec = record(decision="allowed", status=201, client_id="c1")
    with capture_logs() as logs:
        audit.registration(rec)
    assert len(logs) == 1
    assert logs[0]["event"] == "registration"
    assert logs[0]["log_level"] == "info"
    assert {k: logs[0][k] for k in rec.as_fields()} == rec.as_fields()


def test_emit_passes_arbitrary_fields() -> None:
    configure_logging()
    audit = AuditLog("stdout")
    with capture_logs() as logs:
        audit.emit("policy_reload", {"policy": "sha256:abc", "ok": True})
    assert logs == [
        {"event": "policy_reload", "policy": "sha256:abc", "ok": True, "log_level": "info"}
    ]


@pytest.mark.parametrize("level", ["warning", "error"])
def test_audit_events_are_written_whatever_the_log_level(tmp_path: Path, level: str) -> None:
    configure_logging(level)
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.registration(record())
    audit.close()
    assert [e["event"] for e in read_lines(path)] == ["registration"]


def test_configure_logging_writes_iso_utc_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    structlog.get_logger("dcr-gateway").debug("hello", key="value")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "hello"
    assert event["key"] == "value"
    assert event["level"] == "debug"
    assert TIMESTAMP_RE.fullmatch(event["timestamp"])


@pytest.mark.parametrize(
    ("level", "shown"),
    [("debug", True), ("info", False), ("warning", False)],
    ids=["debug", "info", "warning"],
)
def test_configure_logging_filters_operational_logs(
    level: str, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level)
    structlog.get_logger("dcr-gateway").debug("detail")
    assert ("detail" in capsys.readouterr().err) is shown


def test_each_line_starts_with_event_timestamp_level(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    try:
        audit.registration(record(request_id="rid-order"))
    finally:
        audit.close()
    line = path.read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(line))[:3] == ["event", "timestamp", "level"]
    assert line.startswith('{"event": "registration", "timestamp": "')
