"""One client the gateway registered, as the registry keeps it.

The registry is the gateway's memory of the clients that came in through it: who they say
they are, who registered them from where, whether an administrator approved them, when
they were last used, and how to delete them upstream (RFC 7592 §2.3: the client's
configuration endpoint and its registration access token, the latter sealed, see
:mod:`gateway.registry.sealing`).  Clients the registry does not know (registered before
the gateway, or by another door) are never touched by its jobs.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from gateway import fastjson


class Status(Enum):
    #: Registered, waiting for an administrator (``approval.required``).
    PENDING = "pending"
    ACTIVE = "active"
    #: Refused by an administrator; deleted upstream (or being deleted).
    REJECTED = "rejected"
    #: Deleted upstream (by cleanup, eviction, an administrator or its own RFC 7592 call).
    DELETED = "deleted"


#: The statuses of a client that exists upstream and counts against quotas.
LIVE = (Status.PENDING, Status.ACTIVE)


class Source(Enum):
    DCR = "dcr"  # RFC 7591 dynamic registration
    CIMD = "cimd"  # a Client ID Metadata Document


@dataclass(frozen=True, slots=True)
class ClientEntry:
    client_id: str
    tenant: str | None
    source: Source
    #: The managed entry's id, or ``unknown``.
    vendor: str
    #: The quota bucket: ``managed:<id>``, or ``name:<skeleton>`` for unknown clients.
    vendor_key: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    software_id: str | None
    registered_at: float
    registered_ip: str | None
    initial_access_token_name: str | None
    status: Status
    #: The client's configuration endpoint on the upstream (gateway-relative path).
    management_path: str | None = None
    #: The newest registration access token, sealed; ``None`` when none could be kept.
    sealed_token: str | None = None
    status_changed_at: float | None = None
    #: Why the status last changed (``approved``, ``pending_expired``, ``idle`` ...).
    reason: str | None = None
    #: The name of the admin credential that changed it, when one did.
    changed_by: str | None = None
    #: A status change that is waiting for its upstream delete to succeed.
    deleting: bool = False
    delete_attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The bytes this entry was read from, when it was read from storage (not part of it).
    stored: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def with_(self, **changes: Any) -> ClientEntry:
        return replace(self, stored=None, **changes)

    @property
    def as_stored(self) -> bytes:
        """What storage holds for this entry, for compare-and-set: the bytes it was read
        from (whichever version wrote them), else its own encoding."""
        return self.stored if self.stored is not None else self.to_bytes()

    def to_bytes(self) -> bytes:
        # Field by field, not dataclasses.asdict: that deep-copies every value, and cost
        # more than the rest of recording a registration.  Neither dumps copies anything.
        data = {name: getattr(self, name) for name in _STORED_FIELDS}
        data["status"] = self.status.value
        data["source"] = self.source.value
        data["redirect_uris"] = list(self.redirect_uris)
        out = fastjson.dumps(data, sort_keys=True)
        if out.isascii():
            return out
        # What earlier versions wrote (ASCII escapes): replicas not yet upgraded compare
        # entries by their bytes, so a name beyond ASCII is written as they would write it.
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ClientEntry | None:
        """The entry, or ``None`` for a record this version cannot read."""
        try:
            data = json.loads(raw)
            data["status"] = Status(data["status"])
            data["source"] = Source(data["source"])
            data["redirect_uris"] = tuple(data.get("redirect_uris") or ())
            kept = {k: v for k, v in data.items() if k in _STORED_FIELDS}
            return cls(**kept, stored=raw if isinstance(raw, bytes) else None)
        except (ValueError, KeyError, TypeError):
            return None

    def public(self, last_used_at: float | None) -> dict[str, Any]:
        """What the admin API shows: everything but the sealed token (whether one is kept
        is shown, never the token)."""
        return {
            "client_id": self.client_id,
            "tenant": self.tenant,
            "source": self.source.value,
            "vendor": self.vendor,
            "client_name": self.client_name,
            "redirect_uris": list(self.redirect_uris),
            "software_id": self.software_id,
            "registered_at": _iso(self.registered_at),
            "registered_ip": self.registered_ip,
            "initial_access_token_name": self.initial_access_token_name,
            "status": self.status.value,
            "status_changed_at": _iso(self.status_changed_at),
            "reason": self.reason,
            "changed_by": self.changed_by,
            "last_used_at": _iso(last_used_at),
            "deleting": self.deleting,
            "delete_attempts": self.delete_attempts,
            "last_error": self.last_error,
            "can_delete_upstream": self.sealed_token is not None
            and self.management_path is not None,
        }


#: The fields kept in storage (``stored`` is not one of them).
_STORED_FIELDS = tuple(name for name in ClientEntry.__dataclass_fields__ if name != "stored")


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return (
        datetime.datetime.fromtimestamp(int(value), tz=datetime.UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )
