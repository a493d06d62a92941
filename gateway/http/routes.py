"""Classifying a request once: which part of the gateway handles it.

A guard that compares paths byte for byte is walked around with ``/REG``, ``/reg/``,
``//reg``, ``/%72eg`` or ``/x/../reg`` (see :mod:`gateway.uri.paths`), so every request
path is put in canonical form once and compared with the canonical forms of the guarded
paths.  The answer is a :class:`Target`: a kind, and for a management request the client
id it names.  The gateway's own endpoints (``/-/``) are routed by aiohttp before this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from gateway.uri.paths import canonical_path


class Kind(Enum):
    REGISTER = "register"  # the registration endpoint (RFC 7591 §3)
    MANAGE = "manage"  # a client configuration endpoint below it (RFC 7592 §2)
    PASSTHROUGH = "passthrough"  # everything else: relayed untouched


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    #: For ``MANAGE``: the client id, as the canonical path spells it.
    client_id: str | None = None


PASSTHROUGH = Target(Kind.PASSTHROUGH)
REGISTER = Target(Kind.REGISTER)


class Router:
    """The guarded paths of one deployment, matched by canonical form."""

    def __init__(self, registration_paths: Iterable[str] = ()) -> None:
        self.registration_paths = tuple(registration_paths)
        self._register = frozenset(canonical_path(p) for p in self.registration_paths)

    def __bool__(self) -> bool:
        return bool(self._register)

    def classify(self, raw_path: str) -> Target:
        path = canonical_path(raw_path)
        if path in self._register:
            return REGISTER
        parent, _, last = path.rpartition("/")
        if last and parent in self._register:
            return Target(Kind.MANAGE, last)
        return PASSTHROUGH
