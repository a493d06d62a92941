"""Where audit events go: one JSON object per line on ``stdout``, ``stderr`` or a file.

The audit logger has its own processor chain, fixed here, so its output is the same
whether and however the operational logger (:mod:`gateway.audit.logging`) was configured:
a SIEM parsing these lines must not break because someone changed a log level.

A file sink is opened ``O_APPEND`` and each event is one ``write(2)`` of one whole line, so
several worker processes (``server.workers``) appending to the same file never interleave
their lines and never overwrite each other.  :meth:`AuditLog.reopen` (on ``SIGUSR1``)
opens the path again: logrotate renames the file and signals, and the next event lands in
a new file at the configured path (no ``copytruncate``, which loses lines).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, cast

import structlog

from gateway.audit.events import AuditRecord
from gateway.audit.logging import log


def envelope(_: Any, method: str, event_dict: Any) -> Any:
    """``event``, ``timestamp`` (ISO 8601, UTC, microseconds) and ``level`` first, then
    the event's fields: what structlog's ``add_log_level``, ``TimeStamper(fmt="iso",
    utc=True)`` and :func:`~gateway.audit.logging.leading_keys_first` make of it, in one
    pass (this runs once per decision, before the answer is sent)."""
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    line = {"event": event_dict.pop("event"), "timestamp": stamp, "level": method}
    line.update(event_dict)
    return line


#: One encoder for every line (``json.dumps`` with options builds a new one per call).
#: ASCII only, so a bidirectional override in a client name cannot reorder what an
#: operator's terminal shows; anything JSON cannot carry is written as its ``repr``.
_ENCODER = json.JSONEncoder(ensure_ascii=True, default=repr)


def _render(event_dict: Any, **_: Any) -> str:
    return _ENCODER.encode(event_dict)


#: The processors of every audit line, in order; nothing global is consulted.
AUDIT_PROCESSORS: tuple[Any, ...] = (
    envelope,
    structlog.processors.JSONRenderer(serializer=_render),
)


class AppendFile:
    """A file written one whole line per ``write(2)``, opened ``O_APPEND`` (see the module
    docstring); :meth:`reopen` swaps the descriptor for one at the same path."""

    _FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, self._FLAGS, 0o640)

    def write(self, text: str) -> int:
        if self._fd is None:
            raise ValueError(f"audit file {self.path} is closed")
        data = text.encode("utf-8")
        view = memoryview(data)
        while view:  # a regular file takes it whole; loop anyway on a short write
            written = os.write(self._fd, view)
            view = view[written:]
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered: every line was handed to the kernel by :meth:`write`."""

    def reopen(self) -> None:
        """Open the path again (a new file if it was renamed), then close the old one."""
        fd = os.open(self.path, self._FLAGS, 0o640)
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class AuditLog:
    """Writes audit events to one sink; never raises into a request.

    ``observers`` are called with every record written (the metrics count decisions
    there, so each is counted exactly once, as its event)."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self.observers: list[Callable[[AuditRecord], None]] = []
        self._owned: AppendFile | None = None
        if sink == "stdout":
            stream: IO[str] | AppendFile = sys.stdout
        elif sink == "stderr":
            stream = sys.stderr
        else:
            self._owned = AppendFile(sink)
            stream = self._owned
        # Audit events are not subject to log_level: an operator quieting the
        # operational log must not silence the audit trail.
        self._logger = structlog.wrap_logger(
            structlog.WriteLogger(cast(IO[str], stream)),  # AppendFile: write and flush
            processors=list(AUDIT_PROCESSORS),
            wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
            cache_logger_on_first_use=False,
        )

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            self._logger.info(event, **fields)
        except Exception:  # an audit sink failure must not become a 500
            log().exception("audit_write_failed", audit_event=event)

    def write(self, record: AuditRecord) -> None:
        """The one event of a finished exchange."""
        self.emit(record.event, record.as_fields())
        for observer in self.observers:
            try:
                observer(record)
            except Exception:  # counting must not break the answer either
                log().exception("audit_observer_failed", audit_event=record.event)

    def reopen(self) -> bool:
        """Reopen a file sink at its path (log rotation); ``False`` for stdout/stderr, or
        when the path cannot be opened (the old file is kept: no event is lost)."""
        if self._owned is None:
            return False
        try:
            self._owned.reopen()
        except OSError as exc:
            log().error("audit_reopen_failed", path=self.sink, reason=str(exc))
            return False
        return True

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
