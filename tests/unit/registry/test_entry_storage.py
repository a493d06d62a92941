"""Registry entries in storage: their encoding, and compare-and-set against what was read."""

from __future__ import annotations

import dataclasses
import json

from gateway.registry.entry import ClientEntry, Source, Status
from gateway.registry.store import CLIENTS, Registry, field_of
from gateway.storage import MemoryStorage


def _entry(**changes: object) -> ClientEntry:
    base = ClientEntry(
        client_id="c1",
        tenant=None,
        source=Source.DCR,
        vendor="unknown",
        vendor_key="name:app",
        client_name="Caf\u00e9 \u202eApp",
        redirect_uris=("https://app.example/cb",),
        software_id=None,
        registered_at=1764648000.123456,
        registered_ip="127.0.0.1",
        initial_access_token_name=None,
        status=Status.ACTIVE,
        extra={"note": 1},
    )
    return base.with_(**changes)


def _older_encoding(entry: ClientEntry) -> bytes:
    """How entries were encoded before (``json.dumps``, ASCII escapes)."""
    data = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.name != "stored"}
    data["status"], data["source"] = entry.status.value, entry.source.value
    data["redirect_uris"] = list(entry.redirect_uris)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def test_an_entry_reads_back_as_it_was_written() -> None:
    entry = _entry()
    read = ClientEntry.from_bytes(entry.to_bytes())
    assert read == entry
    assert read is not None and read.stored == entry.to_bytes()
    assert "stored" not in json.loads(entry.to_bytes())


def test_a_changed_entry_forgets_the_bytes_it_was_read_from() -> None:
    read = ClientEntry.from_bytes(_older_encoding(_entry()))
    assert read is not None and read.stored is not None
    changed = read.with_(status=Status.PENDING)
    assert changed.stored is None
    assert changed.as_stored == changed.to_bytes()


def test_entries_are_written_as_earlier_versions_wrote_them() -> None:
    # Replicas not yet upgraded compare an entry's bytes with their own encoding of it.
    for entry in (_entry(), _entry(client_name="plain", extra={})):
        assert entry.to_bytes() == _older_encoding(entry)


async def test_an_entry_written_in_the_older_encoding_can_still_be_replaced() -> None:
    storage = MemoryStorage()
    registry = Registry(storage)
    entry = _entry()
    # Bytes another encoder wrote for the same entry (here: json's default spacing).
    older = json.dumps(json.loads(_older_encoding(entry)), sort_keys=True).encode()
    assert older != entry.to_bytes()
    await storage.map_set(CLIENTS, field_of(None, "c1"), older)
    read = await registry.get(None, "c1")
    assert read == entry
    assert read is not None
    assert await registry.replace(read, read.with_(status=Status.REJECTED))
    again = await registry.get(None, "c1")
    assert again is not None and again.status is Status.REJECTED
    assert not await registry.replace(read, read.with_(status=Status.DELETED))  # stale read
    assert await registry.forget(again)
    assert await registry.get(None, "c1") is None


async def test_every_listed_entry_can_be_replaced() -> None:
    storage = MemoryStorage()
    registry = Registry(storage)
    await storage.map_set(CLIENTS, field_of(None, "c1"), _older_encoding(_entry()))
    await registry.add(_entry(client_id="c2"))
    for entry in await registry.entries():
        assert await registry.replace(entry, entry.with_(reason="checked"))
