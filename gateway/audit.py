"""The audit log: exactly one JSON event per registration request, whatever happened.

Modelled on OPA's decision log: the input that was judged (without secrets), the result,
the rule, and what the upstream made of it.  Events go through structlog's configured
processor chain, so ``structlog.testing.capture_logs`` sees them in tests, and are written
as one JSON object per line to the sink (``stdout``, ``stderr`` or a file path).

Field names are a stable interface for SREs: add fields, never rename them.  No field
carries a client secret, a registration access token, an initial access token or an
``Authorization`` header: events are built from an explicit list of safe fields, never by
dumping the request or the upstream's answer.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import structlog

#: The ``event`` value of a registration decision.
REGISTRATION_EVENT = "registration"


_LEADING_KEYS = ("event", "timestamp", "level")


def _leading_keys_first(_: Any, __: str, event_dict: Any) -> Any:
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
            _leading_keys_first,
            structlog.processors.JSONRenderer(ensure_ascii=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def log() -> Any:
    """The operational (non-audit) logger: start-up, reloads, faults."""
    return structlog.get_logger("dcr-gateway")


@dataclass(slots=True)
class RegistrationRecord:
    """What one registration request became; filled in as the request goes on."""

    request_id: str
    client_ip: str | None
    user_agent: str | None
    method: str
    path: str
    decision: str = "error"  # allowed | denied | error
    rule: str | None = None
    error: str | None = None
    error_description: str | None = None
    status: int | None = None
    matched: list[str] = field(default_factory=list)
    vendor: str | None = None
    dropped_redirect_uris: list[str] = field(default_factory=list)
    client_name: str | None = None
    software_id: str | None = None
    redirect_uris: list[str] | None = None
    token_endpoint_auth_method: str | None = None
    grant_types: list[str] | None = None
    scope: str | None = None
    policy: str | None = None
    upstream_status: int | None = None
    upstream_error: str | None = None
    client_id: str | None = None
    client_disconnected: bool = False
    latency_ms: float | None = None

    def note_metadata(self, metadata: dict[str, Any]) -> None:
        """Copy the safe, descriptive fields of the submitted metadata."""
        self.client_name = _str_or_none(metadata.get("client_name"))
        self.software_id = _str_or_none(metadata.get("software_id"))
        self.redirect_uris = _str_list_or_none(metadata.get("redirect_uris"))
        self.token_endpoint_auth_method = _str_or_none(metadata.get("token_endpoint_auth_method"))
        self.grant_types = _str_list_or_none(metadata.get("grant_types"))
        self.scope = _str_or_none(metadata.get("scope"))

    def as_fields(self) -> dict[str, Any]:
        # dataclasses.asdict deep-copies recursively and costs ten times this.
        return {
            name: list(value) if isinstance(value, list) else value
            for name in self.__slots__
            for value in (getattr(self, name),)
        }


def _str_or_none(value: object) -> str | None:
    return value[:2000] if isinstance(value, str) else None


def _str_list_or_none(value: object) -> list[str] | None:
    if isinstance(value, list):
        return [v[:2000] for v in value if isinstance(v, str)][:50]
    return None


class AuditLog:
    """Writes audit events to one sink; never raises into a request."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
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
            wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
            cache_logger_on_first_use=False,
        )

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            self._logger.info(event, **fields)
        except Exception:  # an audit sink failure must not become a 500
            log().exception("audit_write_failed", audit_event=event)

    def registration(self, record: RegistrationRecord) -> None:
        self.emit(REGISTRATION_EVENT, record.as_fields())

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
