"""The registry in storage: one map of entries, one of last uses, and quota counters.

Layout (every key under the storage's prefix): ``reg:clients`` maps ``[tenant, client_id]``
(as JSON) to the entry; ``reg:used`` maps the same field to the time of the client's last
``/authorize`` or ``/token`` use, kept apart so that recording a use never races a status
change; ``reg-count:<tenant>:all`` and ``reg-count:<tenant>:v:<sha256 of the vendor key>``
count live clients for the quotas, and ``reg:counters`` lists every such counter ever
used, so the job can correct one whose vendor has no entry left.  On Redis this survives
gateway restarts and is shared by every replica; status changes are compare-and-set
(:meth:`Storage.map_swap`), so two replicas (a cleanup and an approval, say) cannot both
change the same client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from gateway.bounded_cache import short_text_cache
from gateway.registry.entry import ClientEntry
from gateway.storage import Storage

CLIENTS = "reg:clients"
USED = "reg:used"
COUNTERS = "reg:counters"


def field_of(tenant: str | None, client_id: str) -> str:
    return json.dumps([tenant, client_id], separators=(",", ":"))


def parse_field(field: str) -> tuple[str | None, str] | None:
    try:
        tenant, client_id = json.loads(field)
    except (ValueError, TypeError):
        return None
    if (tenant is not None and not isinstance(tenant, str)) or not isinstance(client_id, str):
        return None
    return tenant, client_id


@short_text_cache
def count_key(tenant: str | None, vendor_key: str | None = None) -> str:
    base = f"reg-count:{tenant or ''}"
    if vendor_key is None:
        return base + ":all"
    return base + ":v:" + hashlib.sha256(vendor_key.encode("utf-8")).hexdigest()[:32]


class Registry:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        #: Counter keys this process has written to ``reg:counters`` (once each).
        self._indexed: set[str] = set()

    async def add(self, entry: ClientEntry) -> None:
        await self.storage.map_set(
            CLIENTS, field_of(entry.tenant, entry.client_id), entry.to_bytes()
        )

    async def get(self, tenant: str | None, client_id: str) -> ClientEntry | None:
        raw = await self.storage.map_get(CLIENTS, field_of(tenant, client_id))
        return None if raw is None else ClientEntry.from_bytes(raw)

    async def replace(self, before: ClientEntry, after: ClientEntry) -> bool:
        """``after`` in place of ``before``, unless someone changed it since it was read."""
        return await self.storage.map_swap(
            CLIENTS, field_of(before.tenant, before.client_id), before.as_stored, after.to_bytes()
        )

    async def forget(self, entry: ClientEntry) -> bool:
        """Remove the entry (an administrator's ``forget``); whether it was as read."""
        field = field_of(entry.tenant, entry.client_id)
        removed = await self.storage.map_swap(CLIENTS, field, entry.as_stored, None)
        if removed:
            await self.storage.map_delete(USED, field)
        return removed

    async def entries(self) -> list[ClientEntry]:
        raw = await self.storage.map_get_all(CLIENTS)
        out = []
        for value in raw.values():
            entry = ClientEntry.from_bytes(value)
            if entry is not None:
                out.append(entry)
        return out

    async def last_used(self, tenant: str | None, client_id: str) -> float | None:
        raw = await self.storage.map_get(USED, field_of(tenant, client_id))
        return _float(raw)

    async def all_last_used(self) -> dict[tuple[str | None, str], float]:
        out: dict[tuple[str | None, str], float] = {}
        for field, raw in (await self.storage.map_get_all(USED)).items():
            key, value = parse_field(field), _float(raw)
            if key is not None and value is not None:
                out[key] = value
        return out

    async def touch(self, tenant: str | None, client_id: str, when: float) -> None:
        await self.storage.map_set(USED, field_of(tenant, client_id), repr(when).encode("ascii"))

    # Quota counters -------------------------------------------------------------------

    async def reserve(self, tenant: str | None, vendor_key: str, caps: QuotaCaps) -> str | None:
        """Count one more live client for the tenant and the vendor, unless either is at
        its cap: ``None`` when counted, else which cap is full (``vendor`` | ``total``)."""
        keys = (count_key(tenant, vendor_key), count_key(tenant))
        for key in keys:  # remembered, so reconcile can correct it even with no entry
            if key not in self._indexed:
                await self.storage.map_set(COUNTERS, key, b"")
                self._indexed.add(key)
        full = await self.storage.counters_reserve(keys, (caps.per_vendor, caps.total))
        return None if full is None else ("vendor", "total")[full]

    async def release(self, tenant: str | None, vendor_key: str) -> None:
        """One live client fewer (deleted, or never created)."""
        await self.storage.counters_release((count_key(tenant, vendor_key), count_key(tenant)))

    async def reconcile(self, entries: Iterable[ClientEntry]) -> None:
        """Set every quota counter to the number of live entries it counts, correcting drift
        (a replica that died between reserving and recording)."""
        counts: dict[str, int] = dict.fromkeys(await self.storage.map_get_all(COUNTERS), 0)
        for entry in entries:
            for key in (count_key(entry.tenant, entry.vendor_key), count_key(entry.tenant)):
                counts[key] = counts.get(key, 0) + (1 if entry.live else 0)
        for key, value in counts.items():
            await self.storage.counter_set(key, value)


class QuotaCaps:
    __slots__ = ("per_vendor", "total")

    def __init__(self, per_vendor: int | None, total: int | None) -> None:
        self.per_vendor = per_vendor
        self.total = total


def _float(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
