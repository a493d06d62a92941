"""What the policy reloads have done: the revision in force, the last error, the counts.

A tiny object of plain values, so the admin API can show it and a metrics exporter can
count from it (``listeners`` are told ``ok`` after every attempt) without knowing how a
reload works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.logging import log


@dataclass(slots=True)
class PolicyStatus:
    #: :attr:`gateway.policy.policies.Policies.revision` of the policies in force.
    revision: str
    #: The files they were read from.
    files: tuple[str, ...]
    #: Unix time the policies in force were loaded.
    loaded_at: float
    reloads_ok: int = 0
    reloads_failed: int = 0
    last_attempt_at: float | None = None
    #: Why the last failed reload failed (its first problem, with ``file:line``), until a
    #: reload succeeds.
    last_error: str | None = None
    last_error_at: float | None = None
    #: Called with ``ok`` after every reload attempt (e.g. a metrics counter).
    listeners: list[Callable[[bool], None]] = field(default_factory=list)

    def succeeded(self, revision: str, files: tuple[str, ...], now: float) -> None:
        self.revision, self.files, self.loaded_at = revision, files, now
        self.reloads_ok += 1
        self.last_attempt_at = now
        self.last_error = self.last_error_at = None
        self._tell(True)

    def failed(self, error: str, now: float) -> None:
        self.reloads_failed += 1
        self.last_attempt_at = self.last_error_at = now
        self.last_error = error
        self._tell(False)

    def public(self) -> dict[str, Any]:
        """The read-only view the admin API answers."""
        return {
            "policy_revision": self.revision,
            "files": list(self.files),
            "loaded_at": self.loaded_at,
            "reloads_ok": self.reloads_ok,
            "reloads_failed": self.reloads_failed,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def _tell(self, ok: bool) -> None:
        """Every listener, each on its own: one that fails (metrics) must not undo a reload
        that already swapped the policies in, nor keep the others from hearing of it."""
        for listener in list(self.listeners):
            try:
                listener(ok)
            except Exception:
                log().exception("policy_reload_listener_failed")
