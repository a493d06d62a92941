"""Where audit events go: one JSON object per line on ``stdout``, ``stderr`` or a file.

The audit logger has its own processor chain, fixed here, so its output is the same
whether and however the operational logger (:mod:`gateway.audit.logging`) was configured:
a SIEM parsing these lines must not break because someone changed a log level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import IO, Any

import structlog

from gateway.audit.events import AuditRecord
from gateway.audit.logging import leading_keys_first, log

#: The processors of every audit line, in order; nothing global is consulted.
AUDIT_PROCESSORS: tuple[Any, ...] = (
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    leading_keys_first,
    structlog.processors.JSONRenderer(ensure_ascii=True),
)


class AuditLog:
    """Writes audit events to one sink; never raises into a request.

    ``observers`` are called with every record written (the metrics count decisions
    there, so each is counted exactly once, as its event)."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self.observers: list[Callable[[AuditRecord], None]] = []
        self._owned: IO[str] | None = None
        if sink == "stdout":
            stream: IO[str] = sys.stdout
        elif sink == "stderr":
            stream = sys.stderr
        else:
            self._owned = open(sink, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            stream = self._owned
        # Audit events are not subject to log_level: an operator quieting the
        # operational log must not silence the audit trail.
        self._logger = structlog.wrap_logger(
            structlog.WriteLogger(stream),
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

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
