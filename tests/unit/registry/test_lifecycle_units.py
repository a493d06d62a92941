"""The pure parts of the client lifecycle, and the registry on the in-memory store: when a
client is due (:func:`due`), the retry backoff, sealing keys and tokens, which client ids
a request names, a new client's first status, the registry's compare-and-set, quota
counters and their reconciliation, and the gate's caching."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from aiohttp.test_utils import make_mocked_request
from cryptography.fernet import Fernet, InvalidToken
from multidict import CIMultiDict

from gateway.policy.loader import policy_from_mapping
from gateway.policy.model import ApprovalPolicy, AutoApprove, CleanupPolicy, Policy
from gateway.registry import gate as gate_module
from gateway.registry.entry import ClientEntry, Source, Status
from gateway.registry.gate import ABSENT_TTL, ACTIVE_TTL, TOUCH_EVERY, ClientGate
from gateway.registry.jobs import due
from gateway.registry.record import first_status
from gateway.registry.removal import MAX_BACKOFF, backoff
from gateway.registry.sealing import Sealer, new_key, parse_keys
from gateway.registry.store import (
    CLIENTS,
    USED,
    QuotaCaps,
    Registry,
    count_key,
    field_of,
    parse_field,
)
from gateway.registry.use import MAX_CLIENT_ID, client_ids
from gateway.storage import MemoryStorage, StorageError

NOW = 1_800_000_000.0
BASE = policy_from_mapping({"version": 1, "mode": "open"})


def make_policy(
    *,
    pending_ttl: float = 3600.0,
    idle_after: float | None = None,
    never_used_after: float | None = None,
    required: bool = False,
    auto: tuple[AutoApprove, ...] = (),
) -> Policy:
    return dataclasses.replace(
        BASE,
        approval=ApprovalPolicy(required=required, auto_approve=auto, pending_ttl=pending_ttl),
        cleanup=CleanupPolicy(idle_after=idle_after, never_used_after=never_used_after),
    )


def entry(client_id: str = "c1", **changes) -> ClientEntry:
    base = ClientEntry(
        client_id=client_id,
        tenant=None,
        source=Source.DCR,
        vendor="unknown",
        vendor_key="name:app",
        client_name="App",
        redirect_uris=("https://app.example/cb",),
        software_id=None,
        registered_at=NOW - 1000,
        registered_ip="127.0.0.1",
        initial_access_token_name=None,
        status=Status.ACTIVE,
        management_path=f"/reg/{client_id}",
        sealed_token="sealed",
    )
    return base.with_(**changes)


# --------------------------------------------------------------------------- due()

PENDING = Status.PENDING
ACTIVE = Status.ACTIVE


@pytest.mark.parametrize(
    ("changes", "last_used", "pol", "expected"),
    [
        pytest.param({"status": PENDING}, None, {"pending_ttl": 1001}, None, id="pending-young"),
        pytest.param(
            {"status": PENDING}, None, {"pending_ttl": 1000}, "pending_expired", id="pending-at-ttl"
        ),
        pytest.param(
            {"status": PENDING}, NOW, {"pending_ttl": 60}, "pending_expired", id="pending-used"
        ),
        pytest.param({"status": PENDING}, None, {"idle_after": 60}, None, id="pending-not-idle"),
        pytest.param({}, None, {}, None, id="active-no-cleanup"),
        pytest.param({}, None, {"never_used_after": 1001}, None, id="never-used-young"),
        pytest.param({}, None, {"never_used_after": 1000}, "never_used", id="never-used-old"),
        pytest.param({}, None, {"idle_after": 60}, None, id="never-used-not-idle"),
        pytest.param({}, NOW - 59, {"idle_after": 60}, None, id="used-recently"),
        pytest.param({}, NOW - 60, {"idle_after": 60}, "idle", id="idle-at-limit"),
        pytest.param({}, NOW - 10**6, {"never_used_after": 60}, None, id="used-not-never"),
        pytest.param(
            {"status": Status.REJECTED}, None, {"pending_ttl": 1, "idle_after": 60}, None, id="rej"
        ),
        pytest.param({"status": Status.DELETED}, NOW - 10**6, {"idle_after": 60}, None, id="del"),
        pytest.param(
            {"deleting": True, "reason": "idle", "next_attempt_at": NOW + 1},
            None,
            {},
            None,
            id="retry-not-yet",
        ),
        pytest.param(
            {"deleting": True, "reason": "idle", "next_attempt_at": NOW},
            NOW,
            {},
            "idle",
            id="retry-due-keeps-reason",
        ),
        pytest.param(
            {"deleting": True, "status": Status.REJECTED, "next_attempt_at": None},
            None,
            {},
            "retry",
            id="retry-without-reason",
        ),
    ],
)
def test_due(changes, last_used, pol, expected):
    """Which clients the job removes, and why: pending past its TTL (whatever its uses),
    active and never used past ``never_used_after``, active and idle past ``idle_after``,
    a failed delete once its backoff has passed; never rejected or deleted ones."""
    assert due(entry(**changes), last_used, make_policy(**pol), NOW) == expected


# --------------------------------------------------------------------------- backoff()


def test_backoff_doubles_from_a_minute_up_to_six_hours():
    """1, 2, 4 ... minutes per failed attempt, never more than six hours, never less than
    a minute (even for nonsense attempt counts)."""
    assert [backoff(n) for n in range(1, 6)] == [60, 120, 240, 480, 960]
    assert backoff(0) == backoff(-3) == 60
    assert backoff(100) == MAX_BACKOFF == 6 * 3600
    values = [backoff(n) for n in range(1, 40)]
    assert values == sorted(values)


@pytest.mark.parametrize("attempts", [1025, 1100, 10_000])
def test_backoff_of_a_delete_failing_for_years_is_still_six_hours(attempts):
    """A delete that can never succeed (its key was dropped) is retried every six hours
    for ever: after ~1025 attempts (256 days) the backoff must still be six hours, not an
    ``OverflowError`` that would end every later lifecycle run at that client."""
    assert backoff(attempts) == MAX_BACKOFF


# --------------------------------------------------------------------------- sealing


def test_parse_keys_accepts_comma_separated_keys_newest_first():
    """Keys are split on commas, trimmed, empty parts skipped, order kept."""
    one, two = new_key(), new_key()
    assert parse_keys(f" {one} ,, {two},") == (one.encode(), two.encode())
    assert parse_keys("") == ()


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ("not-a-key", 1),
        (f"{new_key()},short", 2),
        (f"{new_key()},{new_key()[:-2]}", 2),
        (f"{new_key()},\u00e9" + "a" * 43, 2),
    ],
    ids=["garbage", "second-short", "truncated", "non-ascii"],
)
def test_parse_keys_names_the_bad_key_by_position(value, position):
    """A bad key is a ``ValueError`` naming its position and how to make one, never the
    key itself."""
    with pytest.raises(ValueError, match=f"key {position} is not a Fernet key") as raised:
        parse_keys(value)
    assert "registry-key" in str(raised.value)
    assert value.split(",")[-1] not in str(raised.value)


def test_sealer_seals_unseals_and_keeps_nothing_without_keys():
    """Sealed tokens are not the token, open with any configured key, and never with
    another; without keys nothing is kept."""
    key = Fernet.generate_key()
    sealer = Sealer((key,))
    sealed = sealer.seal("rat-123")
    assert sealed is not None and "rat-123" not in sealed
    assert sealer.unseal(sealed) == "rat-123"
    assert Sealer((Fernet.generate_key(),)).unseal(sealed) is None
    assert sealer.unseal(None) is None
    assert sealer.unseal("garbage") is None
    assert sealer.unseal("\u00e9t\u00e9") is None
    empty = Sealer(())
    assert not empty.enabled
    assert empty.seal("rat-123") is None and empty.unseal(sealed) is None


def test_reseal_moves_old_tokens_to_the_first_key_only():
    """With keys (new, old): a token sealed with old is re-sealed under new (and opens
    with new alone); one already under new, or under no configured key, is left as is."""
    old, new, other = Fernet.generate_key(), Fernet.generate_key(), Fernet.generate_key()
    by_old = Sealer((old,)).seal("rat-old")
    rotating = Sealer((new, old))
    fresh = rotating.reseal(by_old)
    assert fresh is not None
    assert Fernet(new).decrypt(fresh.encode()) == b"rat-old"
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(fresh.encode())
    assert rotating.reseal(fresh) is None
    assert rotating.reseal(Sealer((other,)).seal("rat-x")) is None
    assert rotating.reseal("garbage") is None
    assert Sealer(()).reseal(by_old) is None


# --------------------------------------------------------------------------- client_ids()


def form_request(query: str = "", headers: list[tuple[str, str]] | None = None):
    return make_mocked_request(
        "POST",
        "/token" + (f"?{query}" if query else ""),
        headers=CIMultiDict(
            [("Content-Type", "application/x-www-form-urlencoded"), *(headers or [])]
        ),
    )


def basic(user: str, password: str = "secret") -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


def assertion(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def test_client_ids_from_query_form_basic_and_assertion_each_once_in_order():
    """Every place a request names its client is read: query, form body, the Basic user
    (form-decoded, RFC 6749 §2.3.1) and a client assertion's ``sub``; duplicates once."""
    body = (
        "grant_type=client_credentials&client_id=b&client_id=a"
        f"&client_assertion={assertion({'sub': 'c', 'iss': 'c'})}"
    ).encode()
    request = form_request("client_id=a", [basic("my%20client+x")])
    assert client_ids(request, body) == ["a", "b", "c", "my client x"]


def test_client_ids_ignore_what_names_no_client():
    """Blank and over-long ids, a Bearer header, broken Basic credentials, assertions that
    are not JWTs or whose ``sub`` is no string, and a body that is not UTF-8 name none."""
    long = "x" * (MAX_CLIENT_ID + 1)
    request = form_request(f"client_id=&client_id={long}", [("Authorization", "Bearer tok")])
    body = (
        "client_assertion=not.a-jwt&client_assertion=a.b"
        f"&client_assertion={assertion({'sub': 7})}&client_assertion={assertion([1])}"
    ).encode()
    assert client_ids(request, body) == []
    assert client_ids(form_request(headers=[("Authorization", "Basic %%%")]), None) == []
    assert client_ids(form_request("client_id=q"), b"client_id=\xff") == ["q"]
    exact = "y" * MAX_CLIENT_ID
    assert client_ids(form_request(f"client_id={exact}"), None) == [exact]


def test_client_ids_read_the_basic_user_even_after_another_scheme():
    """A Basic header after a Bearer one is still read; the Basic user is the part before
    the first colon (a secret may contain colons)."""
    request = form_request(headers=[("Authorization", "Bearer x"), basic("svc", "pa:ss")])
    assert client_ids(request, None) == ["svc"]


# --------------------------------------------------------------------------- first_status()


@pytest.mark.parametrize(
    ("required", "auto", "managed", "had_token", "expected"),
    [
        (False, (), False, False, Status.ACTIVE),
        (True, (), False, False, Status.PENDING),
        (True, (), True, True, Status.PENDING),
        (True, (AutoApprove.MANAGED,), True, False, Status.ACTIVE),
        (True, (AutoApprove.MANAGED,), False, True, Status.PENDING),
        (True, (AutoApprove.TOKEN,), False, True, Status.ACTIVE),
        (True, (AutoApprove.TOKEN,), True, False, Status.PENDING),
        (True, (AutoApprove.MANAGED, AutoApprove.TOKEN), False, False, Status.PENDING),
    ],
)
def test_first_status(required, auto, managed, had_token, expected):
    """Pending only when approval is required and no ``auto_approve`` condition holds."""
    pol = make_policy(required=required, auto=auto)
    assert first_status(pol, managed=managed, had_token=had_token) is expected


# --------------------------------------------------------------------------- entries


def test_entry_round_trips_and_unreadable_records_are_none():
    """An entry survives its storage encoding; a record of another version's extra fields
    is still read; junk is ``None``; the admin view never has the sealed token."""
    original = entry(status=Status.PENDING, extra={"note": 1}, redirect_uris=("a", "b"))
    assert ClientEntry.from_bytes(original.to_bytes()) == original
    newer = json.loads(original.to_bytes())
    newer["field_of_a_later_version"] = True
    assert ClientEntry.from_bytes(json.dumps(newer).encode()) == original
    for junk in (b"", b"[]", b"{}", b'{"status": "lost"}', b"\xff"):
        assert ClientEntry.from_bytes(junk) is None
    shown = original.public(NOW)
    assert "sealed_token" not in shown and "sealed" not in json.dumps(shown)
    assert shown["can_delete_upstream"] is True
    assert entry(sealed_token=None).public(None)["can_delete_upstream"] is False
    assert shown["last_used_at"] == "2027-01-15T08:00:00Z"


def test_fields_round_trip_and_junk_is_refused():
    assert parse_field(field_of("realm", "c1")) == ("realm", "c1")
    assert parse_field(field_of(None, "c1")) == (None, "c1")
    for junk in ("", "[1, 2]", '["a"]', "{}", "[null, 5]"):
        assert parse_field(junk) is None


# --------------------------------------------------------------------------- the store


@pytest.fixture
async def registry():
    storage = MemoryStorage()
    yield Registry(storage)
    await storage.close()


async def test_replace_is_compare_and_set(registry):
    """A change made from a stale read loses; ``forget`` likewise, and forgets the use."""
    first = entry(status=Status.PENDING)
    await registry.add(first)
    approved = first.with_(status=Status.ACTIVE)
    assert await registry.replace(first, approved)
    assert not await registry.replace(first, first.with_(status=Status.DELETED))
    assert await registry.get(None, "c1") == approved
    await registry.touch(None, "c1", NOW)
    assert not await registry.forget(first)
    assert await registry.forget(approved)
    assert await registry.get(None, "c1") is None
    assert await registry.last_used(None, "c1") is None


async def test_tenants_are_kept_apart(registry):
    await registry.add(entry(tenant="a"))
    await registry.add(entry(tenant="b", client_name="B"))
    assert (await registry.get("a", "c1")).client_name == "App"
    assert (await registry.get("b", "c1")).client_name == "B"
    assert await registry.get(None, "c1") is None


async def test_entries_and_uses_skip_unreadable_records(registry):
    """A record this version cannot read, or a use that is not a time, is skipped."""
    await registry.add(entry("c1"))
    await registry.storage.map_set(CLIENTS, field_of(None, "junk"), b"{not json")
    await registry.touch(None, "c1", NOW)
    await registry.storage.map_set(USED, field_of(None, "c2"), b"yesterday")
    await registry.storage.map_set(USED, "not a field", b"1.0")
    assert [e.client_id for e in await registry.entries()] == ["c1"]
    assert await registry.all_last_used() == {(None, "c1"): NOW}
    assert await registry.last_used(None, "c2") is None


async def test_reserve_stops_at_either_cap_and_gives_the_vendor_unit_back(registry):
    """Quota counters: the vendor's cap refuses ``vendor``; the tenant's cap refuses
    ``total`` and returns the vendor unit it took; release gives both back."""
    caps = QuotaCaps(per_vendor=2, total=3)
    assert await registry.reserve(None, "managed:a", caps) is None
    assert await registry.reserve(None, "managed:a", caps) is None
    assert await registry.reserve(None, "managed:a", caps) == "vendor"
    assert await registry.reserve(None, "managed:b", caps) is None
    assert await registry.reserve(None, "managed:c", caps) == "total"
    storage = registry.storage
    assert await storage.counter_get(count_key(None, "managed:c")) == 0
    assert await storage.counter_get(count_key(None)) == 3
    await registry.release(None, "managed:a")
    assert await registry.reserve(None, "managed:c", caps) is None
    assert await registry.reserve("other", "managed:a", caps) is None  # its own tenant


async def test_reconcile_sets_counters_to_the_live_entries(registry):
    """Drift (a replica that died between reserving and recording) is corrected: each
    counter becomes the number of live (pending or active) entries it counts."""
    storage = registry.storage
    entries = [
        entry("p", status=Status.PENDING),
        entry("a", status=Status.ACTIVE),
        entry("d", status=Status.DELETED),
        entry("r", status=Status.REJECTED),
        entry("o", vendor_key="managed:other", status=Status.DELETED),
    ]
    await storage.counter_set(count_key(None, "name:app"), 7)
    await storage.counter_set(count_key(None, "managed:other"), 4)
    await storage.counter_set(count_key(None), 9)
    await registry.reconcile(entries)
    assert await storage.counter_get(count_key(None, "name:app")) == 2
    assert await storage.counter_get(count_key(None, "managed:other")) == 0
    assert await storage.counter_get(count_key(None)) == 2


async def test_reconcile_frees_a_vendor_whose_only_reservation_leaked(registry):
    """A replica reserved a unit and died before the client was created, for a vendor with
    no client at all: the next reconcile must give that unit back, or (with a quota of
    one) the vendor could never register again."""
    caps = QuotaCaps(per_vendor=1, total=None)
    assert await registry.reserve(None, "managed:lost", caps) is None  # then the crash
    await registry.add(entry("a"))
    await registry.reconcile(await registry.entries())
    assert await registry.reserve(None, "managed:lost", caps) is None


# --------------------------------------------------------------------------- the gate


class Clock:
    """Stands in for the gate's ``time`` module: monotonic and wall time move on demand."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = NOW

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class CountingRegistry(Registry):
    def __init__(self, storage) -> None:
        super().__init__(storage)
        self.reads = 0
        self.touches = 0
        self.fail_touch = False

    async def get(self, tenant, client_id):
        self.reads += 1
        return await super().get(tenant, client_id)

    async def touch(self, tenant, client_id, when):
        self.touches += 1
        if self.fail_touch:
            raise StorageError("down")
        await super().touch(tenant, client_id, when)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(gate_module, "time", fake)
    return fake


@pytest.fixture
async def counting():
    storage = MemoryStorage()
    yield CountingRegistry(storage)
    await storage.close()


async def test_gate_caches_absence_until_forgotten_or_expired(counting, clock):
    """An unknown client id is looked up once per ``ABSENT_TTL``; ``forget`` (a client
    just recorded here) ends that at once."""
    gate = ClientGate(counting)
    assert await gate.status(None, "c1") is None
    await counting.add(entry("c1", status=Status.PENDING))
    assert await gate.status(None, "c1") is None
    assert counting.reads == 1
    gate.forget(None, "c1")
    assert await gate.status(None, "c1") is Status.PENDING
    assert await gate.status(None, "c2") is None
    await counting.add(entry("c2"))
    clock.advance(ABSENT_TTL - 1)
    assert await gate.status(None, "c2") is None
    clock.advance(1)
    assert await gate.status(None, "c2") is Status.ACTIVE


async def test_gate_rereads_a_client_that_is_not_active_every_time(counting, clock):
    """A pending client is read on every request, so an approval anywhere is seen at once;
    an active one is believed for ``ACTIVE_TTL``."""
    gate = ClientGate(counting)
    pending = entry("c1", status=Status.PENDING)
    await counting.add(pending)
    for _ in range(3):
        assert await gate.status(None, "c1") is Status.PENDING
    assert counting.reads == 3
    active = pending.with_(status=Status.ACTIVE)
    assert await counting.replace(pending, active)
    assert await gate.status(None, "c1") is Status.ACTIVE
    reads = counting.reads
    deleted = active.with_(status=Status.DELETED)
    assert await counting.replace(active, deleted)
    clock.advance(ACTIVE_TTL)
    assert await gate.status(None, "c1") is Status.ACTIVE  # believed, not re-read
    assert counting.reads == reads
    clock.advance(0.5)
    assert await gate.status(None, "c1") is Status.DELETED
    assert await gate.status(None, "c1") is Status.DELETED
    assert counting.reads == reads + 2


async def test_gate_records_uses_at_most_once_a_minute_and_survives_a_failed_write(counting, clock):
    """The last use is written on the first request and then once per ``TOUCH_EVERY``; a
    storage error while writing it does not refuse the request."""
    gate = ClientGate(counting)
    await counting.add(entry("c1"))
    assert await gate.status(None, "c1") is Status.ACTIVE
    assert await counting.last_used(None, "c1") == NOW
    clock.advance(TOUCH_EVERY - 1)
    assert await gate.status(None, "c1") is Status.ACTIVE
    assert counting.touches == 1
    clock.advance(1)
    counting.fail_touch = True
    assert await gate.status(None, "c1") is Status.ACTIVE
    assert counting.touches == 2
    assert await counting.last_used(None, "c1") == NOW


async def test_gate_raises_when_the_registry_cannot_be_read(clock):
    """A storage error reading the entry is the caller's to decide (fail open or closed)."""

    class Down(Registry):
        async def get(self, tenant, client_id):
            raise StorageError("down")

    gate = ClientGate(Down(MemoryStorage()))
    with pytest.raises(StorageError):
        await gate.status(None, "c1")
