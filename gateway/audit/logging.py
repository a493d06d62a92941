"""The operational log: start-up, reloads, faults; JSON lines on stderr.

It is configured once per process with structlog's global configuration.  The audit log
(:mod:`gateway.audit.sink`) does not go through it: an operator changing the log level or
the processors here must never change, or silence, the audit trail.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEADING_KEYS = ("event", "timestamp", "level")


def leading_keys_first(_: Any, __: str, event_dict: Any) -> Any:
    """``event``, ``timestamp`` and ``level`` open every line, where eyes and ``cut`` look."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def configure_logging(level: str = "info") -> None:
    """Configure structlog once per process: ISO-8601 UTC timestamps, JSON lines."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            leading_keys_first,
            structlog.processors.JSONRenderer(ensure_ascii=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def log() -> Any:
    """The operational (non-audit) logger."""
    return structlog.get_logger("dcr-gateway")
