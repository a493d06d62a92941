"""The audit sink: one whole line per write, and reopening at the same path (rotation)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.audit.sink import AppendFile, AuditLog


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_file_sink_appends_one_json_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event": "earlier"}\n', encoding="utf-8")
    audit = AuditLog(str(path))
    audit.emit("registration", {"decision": "allowed", "client_name": "ünïcode"})
    audit.close()
    events = lines(path)
    assert [e["event"] for e in events] == ["earlier", "registration"]
    assert events[1]["client_name"] == "ünïcode"


def test_reopen_after_a_rename_writes_a_new_file_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.emit("first", {})
    rotated = tmp_path / "audit.jsonl.1"
    path.rename(rotated)
    audit.emit("second", {})  # still the renamed file: nothing reopened yet
    assert audit.reopen() is True
    audit.emit("third", {})
    audit.close()
    assert [e["event"] for e in lines(rotated)] == ["first", "second"]
    assert [e["event"] for e in lines(path)] == ["third"]


def test_reopen_failure_keeps_the_old_file(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "audit.jsonl"
    audit = AuditLog(str(path))
    moved = tmp_path / "moved"
    folder.rename(moved)  # the configured folder is gone: the path cannot be opened
    assert audit.reopen() is False
    audit.emit("kept", {})
    audit.close()
    assert [e["event"] for e in lines(moved / "audit.jsonl")] == ["kept"]


def test_stdout_is_not_reopened(capsys) -> None:
    audit = AuditLog("stdout")
    assert audit.reopen() is False
    audit.emit("still", {})
    assert json.loads(capsys.readouterr().out)["event"] == "still"


def test_two_writers_never_interleave_long_lines(tmp_path: Path) -> None:
    """Two descriptors on one file (two workers): each line arrives whole."""
    path = tmp_path / "shared.jsonl"
    first, second = AppendFile(str(path)), AppendFile(str(path))
    long_a = json.dumps({"w": "a" * 100_000}) + "\n"
    long_b = json.dumps({"w": "b" * 100_000}) + "\n"
    for _ in range(5):
        first.write(long_a)
        second.write(long_b)
    first.close()
    second.close()
    written = path.read_text(encoding="utf-8").splitlines()
    assert len(written) == 10
    assert {json.loads(line)["w"][0] for line in written} == {"a", "b"}


def test_a_closed_file_refuses_writes_and_the_log_reports_it(tmp_path: Path) -> None:
    sink = AppendFile(str(tmp_path / "a.jsonl"))
    sink.close()
    try:
        sink.write("x\n")
    except ValueError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed sink accepted a write")
    sink.close()  # twice is harmless
