"""One policy reload: read every policy file again, validate all of it, swap it in whole.

The new :class:`~gateway.policy.policies.Policies` is built off the event loop (a large
policy compiles thousands of patterns) and replaces the old one in a single assignment to
:attr:`gateway.state.Gateway.policies`.  Every handler reads that attribute once, into a
local, when its request starts, so a request in flight finishes under the policies it
started with, and the next request sees the new ones; nothing else holds a policy.

Derived state lives in the policy objects themselves (compiled patterns, managed-list
indexes, name globs, rate-limit rules, listed token hashes, CIMD allow lists, the
report-only view), so building new ones rebuilds all of it.  State kept in storage is
keyed by names, not by policy objects, and carries over: rate-limit counters by rule name
and window length, token uses by token name, client records and CIMD mappings (each CIMD
document is judged again under the policy in force on every request).

A reload that fails anywhere (a YAML error, an unknown key, a missing tenant file) keeps
every old policy, logs and audits why with the ``file:line`` of the first problem, and is
counted; a reload that succeeds audits ``policy.loaded`` with the combined revision.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.audit.logging import log
from gateway.config.load import load_policies
from gateway.config.settings import Settings
from gateway.config.yamlsource import ConfigError
from gateway.policy.policies import Policies
from gateway.reload.status import PolicyStatus

if TYPE_CHECKING:
    from gateway.state import Gateway

LOADED_EVENT = "policy.loaded"
FAILED_EVENT = "policy.reload_failed"
#: Most problems a failure event lists (``check`` lists them all).
MAX_PROBLEMS = 20

#: What a file looked like: (mtime in ns, size, inode), or ``None`` when it is missing.
Stamp = tuple[tuple[str, tuple[int, int, int] | None], ...]


def stamp(paths: tuple[str, ...]) -> Stamp:
    """How ``paths`` look on disk now; any change of content changes it (an editor's
    rename, a Kubernetes ConfigMap's symlink swap, an in-place write)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((path, None))
        else:
            out.append((path, (st.st_mtime_ns, st.st_size, st.st_ino)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    revision: str
    #: ``False`` when the files held the revision already in force.
    changed: bool = False
    error: str | None = None
    problems: tuple[str, ...] = ()


class PolicyReloader:
    """Reloads the policies of one gateway, one reload at a time."""

    def __init__(self, settings: Settings, policies: Policies) -> None:
        self.settings = settings
        self.status = PolicyStatus(policies.revision, self.files_of(policies), time.time())
        self._lock = asyncio.Lock()

    def files_of(self, policies: Policies) -> tuple[str, ...]:
        """The files a reload reads: the settings' policy files, and the files the loaded
        policies were read from (initial access tokens name policy files of their own)."""
        named = [str(self.settings.policy_file), *(str(f) for _, f in self.settings.tenants)]
        found = [s for s in policies.sources() if Path(s).is_absolute()]
        return tuple(dict.fromkeys([*named, *found]))

    def announce(self, gateway: Gateway) -> None:
        """The start-up event: which policies the gateway serves with."""
        policies = gateway.policies
        gateway.audit.emit(LOADED_EVENT, self._loaded_fields(policies, "startup", None, True))
        log().info("policy_loaded", trigger="startup", policy_revision=policies.revision)

    async def reload(self, gateway: Gateway, trigger: str) -> ReloadOutcome:
        """Read, validate and swap in every policy file; on any error keep the old."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(load_policies, self.settings)
            except ConfigError as exc:
                problems = tuple(str(p) for p in exc.problems)
                return self._failed(gateway, trigger, problems or ("no policy was loaded",))
            except Exception as exc:  # a bug must not take the old policies down with it
                log().exception("policy_reload_crashed", trigger=trigger)
                return self._failed(gateway, trigger, (f"unexpected error: {type(exc).__name__}",))
            old = gateway.policies
            changed = new.revision != old.revision
            if changed:
                gateway.policies = new  # the swap: one assignment, seen by the next request
            previous = old.revision
            self.status.succeeded(new.revision, self.files_of(new), time.time())
            fields = self._loaded_fields(new, trigger, previous, changed)
            gateway.audit.emit(LOADED_EVENT, fields)
            log().info(
                "policy_reloaded",
                trigger=trigger,
                policy_revision=new.revision,
                previous_revision=previous,
                changed=changed,
            )
            return ReloadOutcome(True, new.revision, changed)

    def _failed(self, gateway: Gateway, trigger: str, problems: tuple[str, ...]) -> ReloadOutcome:
        error = problems[0]
        self.status.failed(error, time.time())
        kept = gateway.policies.revision
        gateway.audit.emit(
            FAILED_EVENT,
            {
                "trigger": trigger,
                "decision": "error",
                "error": error,
                "problems": list(problems[:MAX_PROBLEMS]),
                "problem_count": len(problems),
                "files": list(self.status.files),
                "policy_revision": kept,
            },
        )
        log().error(
            "policy_reload_failed",
            trigger=trigger,
            error=error,
            problem_count=len(problems),
            kept_revision=kept,
        )
        return ReloadOutcome(False, kept, False, error, problems)

    def _loaded_fields(
        self, policies: Policies, trigger: str, previous: str | None, changed: bool
    ) -> dict[str, Any]:
        return {
            "trigger": trigger,
            "decision": "allowed",
            "policy_revision": policies.revision,
            "previous_revision": previous,
            "changed": changed,
            "files": list(self.files_of(policies)),
            "policies": {role: p.revision for role, p in policies.roles()},
        }
