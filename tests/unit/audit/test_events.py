"""Unit tests for gateway.audit.events: one JSON event per registration, never a secret."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.audit.events import REGISTRATION_EVENT, AuditRecord
from gateway.audit.logging import configure_logging
from gateway.audit.sink import AuditLog

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


def record(**overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "request_id": "rid-1",
        "client_ip": "203.0.113.9",
        "user_agent": "mcp-client/1.0",
        "method": "POST",
        "path": "/reg",
    }
    fields.update(overrides)
    return AuditRecord(event=REGISTRATION_EVENT, **fields)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- AuditRecord --------------------------------------------------------------------


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


def test_note_request_copies_the_safe_fields() -> None:
    rec = record()
    rec.note_request({**SAFE, **SECRETS})
    assert rec.client_name == "Claude"
    assert rec.software_id == "claude-desktop"
    assert rec.redirect_uris == ["http://127.0.0.1:33418/callback"]
    assert rec.token_endpoint_auth_method == "none"
    assert rec.grant_types == ["authorization_code", "refresh_token"]
    assert rec.scope == "openid mcp"


@pytest.mark.parametrize("secret_field", sorted(SECRETS), ids=sorted(SECRETS))
def test_note_request_never_copies_other_fields(secret_field: str) -> None:
    rec = record()
    rec.note_request({**SAFE, secret_field: SECRETS[secret_field]})
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
        "jwks",
    }


# --- replayable metadata, the policy's verdict, report-only --------------------------


@pytest.mark.parametrize("secret_field", sorted(SECRETS), ids=sorted(SECRETS))
def test_submitted_metadata_never_carries_a_secret(secret_field: str) -> None:
    """The metadata kept for ``dcr-gateway diff`` keeps the field's place (so the member
    count is the same on replay), never its secret value."""
    rec = record()
    rec.note_submitted({**SAFE, secret_field: SECRETS[secret_field]})
    fields = rec.as_fields()
    assert secret_field in fields["metadata"]
    text = json.dumps(fields)
    for secret in ("s3cr3t", "rat-very", "iat-very", "symmetric-key", "secret-statement"):
        assert secret not in text
    assert "vendor-secret" not in text


def test_submitted_metadata_keeps_what_the_policy_judges() -> None:
    metadata = {
        **SAFE,
        "client_name#ja": "クロード",
        "logo_uri": "https://claude.ai/logo.png",
        "post_logout_redirect_uris": ["https://claude.ai/bye"],
        "response_types": ["code"],
        "default_max_age": 60,
        "require_auth_time": True,
        "jwks": {"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB", "d": "private"}]},
        "software_statement": "eyJ.e30.sig",
    }
    rec = record()
    rec.note_submitted(metadata)
    kept = rec.as_fields()["metadata"]
    for key in (*SAFE, "client_name#ja", "logo_uri", "post_logout_redirect_uris"):
        assert kept[key] == metadata[key], key
    assert kept["default_max_age"] == 60 and kept["require_auth_time"] is True
    assert kept["jwks"] == {"keys": "<omitted>"}  # present, as an object, no key material
    assert kept["software_statement"] == "<omitted>"  # present: the engine refuses any


def test_submitted_metadata_is_kept_whole_or_not_at_all() -> None:
    """Cutting a redirect URI would make the replay judge another request."""
    rec = record()
    rec.note_submitted({"redirect_uris": ["https://x.example/" + "a" * 1990] * 10})
    fields = rec.as_fields()
    assert "metadata" not in fields
    assert fields["truncated"]["metadata"] > 16384


def test_no_metadata_field_without_note_submitted() -> None:
    assert "metadata" not in record().as_fields()
    assert "policy_decision" not in record().as_fields()
    assert "report_only" not in record().as_fields()


def _resolution(policy_data: dict[str, Any], metadata: dict[str, Any]) -> Any:
    from gateway.policy.judge import judge
    from gateway.policy.loader import policy_from_mapping
    from gateway.policy.report_only import resolve

    policy = policy_from_mapping({"version": 1, **policy_data})
    return resolve(policy, judge(policy, metadata), lambda view: judge(view, metadata))


def test_note_resolution_of_a_reported_refusal_is_would_deny() -> None:
    resolution = _resolution(
        {"redirect_uris": {"report_only": True}},
        {"redirect_uris": ["https://other.example.com/cb"]},
    )
    rec = record()
    rec.note_resolution(resolution)
    rec.decision = "allowed"  # a later stage saying it went through changes nothing
    fields = rec.as_fields()
    assert fields["decision"] == "would_deny"
    assert fields["rule"] == "redirect_uri.not_allowed"
    assert fields["policy_decision"] == {"decision": "would_deny", "rule": fields["rule"]}
    assert fields["report_only"]["group"] == "redirect_uris"
    assert fields["report_only"]["error"] == "invalid_redirect_uri"
    assert fields["report_only"]["status"] == 400
    assert fields["report_only"]["allowed_by"].startswith("allow.")
    assert fields["error"] is None  # nothing was answered as an error


def test_a_failure_after_a_would_deny_is_an_error_that_keeps_the_report() -> None:
    from gateway import rules

    resolution = _resolution(
        {"redirect_uris": {"report_only": True}},
        {"redirect_uris": ["https://other.example.com/cb"]},
    )
    rec = record()
    rec.note_resolution(resolution)
    rec.note_error(rules.UPSTREAM_TIMEOUT.refuse("no answer"))
    fields = rec.as_fields()
    assert fields["decision"] == "error"
    assert fields["rule"] == "upstream.timeout"
    assert fields["policy_decision"]["decision"] == "would_deny"
    assert fields["report_only"]["group"] == "redirect_uris"


def test_note_decision_records_the_policy_verdict_apart_from_later_refusals() -> None:
    from gateway import rules

    resolution = _resolution({}, {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]})
    rec = record()
    rec.note_resolution(resolution)
    rec.note_error(rules.RATE_LIMITED.refuse_as("rate_limit.per-ip", "too many", retry_after=5))
    fields = rec.as_fields()
    assert fields["decision"] == "denied"
    assert fields["rule"] == "rate_limit.per-ip"
    assert fields["policy_decision"] == {"decision": "allowed", "rule": "allow.managed"}


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
                "truncated": {"client_name": 5000, "scope": 2001},
            },
        ),
        (
            {"redirect_uris": [f"https://a/{i}" for i in range(150)]},
            {
                "client_name": None,
                "redirect_uris": [f"https://a/{i}" for i in range(100)],
                "grant_types": None,
                "scope": None,
                "truncated": {"redirect_uris": 150},
            },
        ),
        (
            {"redirect_uris": [f"https://a/{i}" for i in range(60)]},
            {
                "client_name": None,
                "redirect_uris": [f"https://a/{i}" for i in range(60)],
                "grant_types": None,
                "scope": None,
            },
        ),
        (
            {"redirect_uris": ["https://a/cb", "u" * 3000]},
            {
                "client_name": None,
                "redirect_uris": ["https://a/cb", "u" * 2000],
                "grant_types": None,
                "scope": None,
                "truncated": {"redirect_uris[1]": 3000},
            },
        ),
    ],
    ids=[
        "absent",
        "wrong-types",
        "non-strings-dropped-from-lists",
        "long-strings-cut-and-marked",
        "at-most-100-items-and-marked",
        "60-items-all-kept",
        "long-list-items-cut-and-marked",
    ],
)
def test_note_request_bounds_and_types(metadata: dict[str, Any], expected: dict[str, Any]) -> None:
    rec = record()
    rec.note_request(metadata)
    fields = rec.as_fields()
    assert {name: fields.get(name) for name in expected} == expected
    if "truncated" not in expected:
        assert "truncated" not in fields


def test_note_request_copies_lists_not_references() -> None:
    uris = ["https://a/cb"]
    rec = record()
    rec.note_request({"redirect_uris": uris})
    uris.append("https://evil/cb")
    assert rec.redirect_uris == ["https://a/cb"]


# --- AuditLog ------------------------------------------------------------------------------


def test_file_sink_writes_one_json_object_per_line(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    try:
        first = record(request_id="rid-1", decision="allowed", status=201, client_id="c1")
        first.note_request({**SAFE, **SECRETS})
        audit.write(first)
        audit.write(record(request_id="rid-2", decision="denied", rule="policy.x"))
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
    audit.write(record())
    audit.close()
    events = read_lines(path)
    assert [e["event"] for e in events] == ["earlier", "registration"]


def test_event_is_written_before_close(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.write(record())
    assert len(read_lines(path)) == 1  # line-buffered: visible without close()
    audit.close()


def test_unicode_is_escaped_into_ascii_json(tmp_path: Path) -> None:
    configure_logging()
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    rec = record()
    rec.note_request({"client_name": "Caf\u00e9\nX-Injected: 1"})
    audit.write(rec)
    audit.close()
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    assert raw.isascii()
    assert read_lines(path)[0]["client_name"] == "Caf\u00e9\nX-Injected: 1"


@pytest.mark.parametrize("sink", ["stdout", "stderr"])
def test_stream_sinks(sink: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    audit = AuditLog(sink)
    audit.write(record(request_id="rid-stream"))
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
    audit.write(record())  # the sink is closed: logged, never raised
    assert path.read_text(encoding="utf-8") == ""


def test_emit_passes_arbitrary_fields(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.emit("policy.loaded", {"policy_revision": "abc", "ok": True})
    audit.close()
    (event,) = read_lines(path)
    assert (event["event"], event["policy_revision"], event["ok"]) == ("policy.loaded", "abc", True)


def _one_line(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    audit = AuditLog(str(path))
    rec = record(decision="allowed", status=201, client_id="c1")
    rec.note_request(SAFE)
    audit.write(rec)
    audit.close()
    return re.sub(r'"timestamp": "[^"]*"', '"timestamp": ""', path.read_text(encoding="utf-8"))


def test_audit_output_does_not_depend_on_the_operational_logger(tmp_path: Path) -> None:
    """Its own processor chain: configuring (or misconfiguring) structlog changes nothing."""
    configure_logging()
    baseline = _one_line(tmp_path, "a.jsonl")
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    )
    assert _one_line(tmp_path, "b.jsonl") == baseline
    structlog.reset_defaults()
    assert _one_line(tmp_path, "c.jsonl") == baseline
    with capture_logs():
        assert _one_line(tmp_path, "d.jsonl") == baseline
    assert json.loads(baseline)["client_id"] == "c1"


@pytest.mark.parametrize("level", ["warning", "error"])
def test_audit_events_are_written_whatever_the_log_level(tmp_path: Path, level: str) -> None:
    configure_logging(level)
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.write(record())
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
        audit.write(record(request_id="rid-order"))
    finally:
        audit.close()
    line = path.read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(line))[:3] == ["event", "timestamp", "level"]
    assert line.startswith('{"event": "registration", "timestamp": "')


# --- note_answer ----------------------------------------------------------------------


FULL_ANSWER = (
    b'{"client_id": "c-123", "client_secret": "very-secret", '
    b'"registration_access_token": "rat-secret", "registration_client_uri": "https://as/reg/c", '
    b'"client_id_issued_at": 1700000000, "redirect_uris": ["https://a/cb"]}'
)


@pytest.mark.parametrize(
    ("body", "client_id", "upstream_error"),
    [
        (FULL_ANSWER, "c-123", None),
        (
            b'{"error": "invalid_redirect_uri", "error_description": "no"}',
            None,
            "invalid_redirect_uri",
        ),
        (b'{"client_id": "c", "error": "odd"}', "c", "odd"),
        (b'{"client_id": 123, "error": ["x"]}', None, None),
        (b'{"client_id": null}', None, None),
        (b'["client_id", "c"]', None, None),
        (b'"c-123"', None, None),
        (b"", None, None),
        (b"not json", None, None),
        (b"<html>502 Bad Gateway</html>", None, None),
        (b'{"client_id": "c"', None, None),
        (b"\xff\xfe\x00", None, None),
        (b'{"client_id": "' + b"c" * 800 + b'"}', "c" * 800, None),
        (b'{"client_id": "' + b"c" * 3000 + b'"}', "c" * 2000, None),
        (b'{"error": "' + b"e" * 300 + b'"}', None, "e" * 300),
        ('{"client_id": "caf\u00e9"}'.encode(), "caf\u00e9", None),
    ],
    ids=[
        "success",
        "oauth-error",
        "both",
        "wrong-types",
        "null",
        "array",
        "string",
        "empty",
        "not-json",
        "html",
        "truncated",
        "binary",
        "long-client-id-kept",
        "over-long-client-id-cut",
        "long-error-kept",
        "unicode",
    ],
)
def test_note_answer(body: bytes, client_id: str | None, upstream_error: str | None) -> None:
    rec = record()
    rec.note_answer(201, body)
    assert rec.client_id == client_id
    assert rec.upstream_error == upstream_error


def test_note_answer_keeps_nothing_else() -> None:
    rec = record()
    before = rec.as_fields()
    rec.note_answer(201, FULL_ANSWER)
    after = rec.as_fields()
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"client_id", "upstream_status"}
    text = repr(after)
    assert "very-secret" not in text
    assert "rat-secret" not in text
    assert "https://as/reg/c" not in text


def test_note_answer_survives_deep_nesting() -> None:
    rec = record()
    rec.note_answer(201, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b', "client_id": "c"}')
    assert rec.client_id is None
