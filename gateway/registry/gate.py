"""The registry at the authorization and token endpoints: who may use them, who did.

A pending client (``approval.required``) must not get a code or a token, a rejected or
deleted one neither, and cleanup needs to know when each client was last used.  Both are
answered here for every ``/authorize`` and ``/token`` request (and the other endpoints a
client uses with its credentials: pushed authorization, device authorization), cheaply:

* a client id the registry does not know costs an in-process dictionary lookup once it has
  been looked up (negative answers are kept for :data:`ABSENT_TTL` seconds; client ids are
  issued by the upstream at registration, so none is looked up before it exists);
* an active client costs nothing more, but for one storage write per minute per replica to
  record its use (``reg:used``), and one re-read every :data:`ACTIVE_TTL` seconds;
* a client that is not active is re-read on every request, so an approval on one replica
  lifts the block on every replica at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.audit.logging import log
from gateway.registry.entry import Status
from gateway.registry.store import Registry, field_of
from gateway.storage import StorageError

#: How long "not in the registry" is believed.
ABSENT_TTL = 60.0
#: How long "active" is believed before the entry is read again.
ACTIVE_TTL = 30.0
#: At most one ``last_used_at`` write per client per this many seconds (per replica).
TOUCH_EVERY = 60.0
MAX_CACHED = 100_000


@dataclass(slots=True)
class _Known:
    status: Status
    read_at: float
    touched_at: float


class ClientGate:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._absent: OrderedDict[str, float] = OrderedDict()

    def forget(self, tenant: str | None, client_id: str) -> None:
        """Drop what this replica believes of a client (its status just changed here)."""
        field = field_of(tenant, client_id)
        self._known.pop(field, None)
        self._absent.pop(field, None)

    async def status(self, tenant: str | None, client_id: str) -> Status | None:
        """The client's status, ``None`` when the registry does not know it; records the
        use.  Raises :class:`StorageError` when the registry cannot be read."""
        field = field_of(tenant, client_id)
        mono = time.monotonic()
        absent = self._absent.get(field)
        if absent is not None and mono - absent < ABSENT_TTL:
            return None
        known = self._known.get(field)
        if known is None or known.status is not Status.ACTIVE or mono - known.read_at > ACTIVE_TTL:
            entry = await self.registry.get(tenant, client_id)
            if entry is None:
                self._known.pop(field, None)
                _put(self._absent, field, mono)
                return None
            self._absent.pop(field, None)
            touched = known.touched_at if known is not None else -TOUCH_EVERY
            known = _Known(entry.status, mono, touched)
            _put(self._known, field, known)
        # Only an active client's requests are uses: a pending one polling the
        # authorization endpoint must not look fresh to eviction.
        if known.status is Status.ACTIVE and mono - known.touched_at >= TOUCH_EVERY:
            known.touched_at = mono
            try:
                await self.registry.touch(tenant, client_id, time.time())
            except StorageError as exc:
                log().warning("client_use_not_recorded", reason=str(exc)[:200])
        return known.status


def _put(cache: OrderedDict, key: str, value: object) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)
