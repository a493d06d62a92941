"""The admin API for registered clients: list, show, approve, reject, delete, count.

The registry (:mod:`gateway.registry.store`) is the gateway's memory of the clients that
registered through it; this is how an operator reads and acts on it, from a script or
``dcr-gateway clients``:

* ``GET /-/admin/clients`` lists clients by filter (vendor, source, status, tenant, a name
  glob, registration time, idleness), a page at a time; ``GET /-/admin/clients/stats``
  counts them;
* ``GET /-/admin/clients/<id>`` shows one; ``POST .../<id>/approve`` lets a pending client
  (``approval.required``) use the authorization and token endpoints;
* ``POST .../<id>/reject`` and ``DELETE .../<id>`` delete a client upstream with its own
  registration access token, as RFC 7592 §2.3 has the client do it, through
  :func:`gateway.registry.removal.remove` (so a failed upstream delete is retried by the
  lifecycle job, never recorded as done); ``DELETE .../<id>?forget=true`` drops the record
  of a client deleted elsewhere without asking the upstream;
* ``POST /-/admin/clients/delete`` deletes every client a filter matches, in two steps: a
  dry run that counts, then the delete with that count as ``expected_count``, refused when
  the filter matches another number by then (so a typo in a filter deletes nothing the
  operator did not see counted);
* ``POST /-/admin/lifecycle/run`` runs the lifecycle job once (or its dry run).

Every call needs ``Authorization: Bearer <admin token>`` (:func:`check_admin`) and writes
exactly one audit event (``admin.client.*``, ``admin.clients.*``, ``admin.lifecycle.run``)
naming the admin credential by its environment variable, never the token; a bulk delete
also writes one ``client.cleanup`` event per client.  No answer carries a registration
access token (:meth:`ClientEntry.public` leaves it out).

The filter and the pagination are pure (:class:`ClientFilter`, :func:`page`), so they are
tested without a gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import fnmatch
import functools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from gateway import rules
from gateway.errors import OAuthError, quote_value
from gateway.http.exchange import Exchange
from gateway.http.responses import json_response
from gateway.oauth.body import parse_body
from gateway.registration.request import check_content_headers, read_body
from gateway.registry.entry import LIVE, ClientEntry, Source, Status
from gateway.registry.jobs import audit_removal, run_once
from gateway.registry.removal import Outcome, remove
from gateway.state import GATEWAY, Gateway
from gateway.storage import StorageError
from gateway.tokens.admin import check_admin

PATH = "/-/admin/clients"
STATS_PATH = PATH + "/stats"
BULK_PATH = PATH + "/delete"
LIFECYCLE_PATH = "/-/admin/lifecycle/run"

EVENT_LIST = "admin.client.list"
EVENT_SHOW = "admin.client.show"
EVENT_APPROVED = "admin.client.approved"
EVENT_REJECTED = "admin.client.rejected"
EVENT_DELETED = "admin.client.deleted"
EVENT_BULK = "admin.clients.bulk_delete"
EVENT_STATS = "admin.clients.stats"
EVENT_LIFECYCLE = "admin.lifecycle.run"
#: The event of each client a bulk delete removes (as the lifecycle job's).
CLEANUP_EVENT = "client.cleanup"

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Most client ids a bulk delete's dry run lists.
MAX_LISTED_IDS = 1000
#: A bulk delete's body is a filter and two fields.
MAX_BODY = 8192
#: Upstream deletes a bulk delete runs at once.
BULK_CONCURRENCY = 4
#: Longest vendor, tenant or name pattern accepted in a filter.
MAX_TEXT = 200
MAX_CURSOR = 1000

FILTER_KEYS = (
    "vendor",
    "source",
    "status",
    "tenant",
    "name",
    "registered_before",
    "registered_after",
    "idle_for",
)
_BULK_FIELDS = ("filter", "dry_run", "expected_count")
_EMPTY_FILTER = (
    "an empty filter would match every client; name what to delete, "
    'e.g. {"status": ["pending", "active"]}'
)


# --------------------------------------------------------------------------- filter


class FilterError(ValueError):
    """A filter, page or query parameter that is not valid; ``param`` names it."""

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"{param}: {why}")
        self.param = param


@dataclass(frozen=True, slots=True)
class ClientFilter:
    """Which clients a list, a count or a bulk delete is about; empty matches all."""

    vendor: str | None = None
    source: Source | None = None
    statuses: frozenset[Status] = frozenset()
    tenant: str | None = None
    #: A glob (``fnmatch``: ``*``, ``?``, ``[...]``) over ``client_name``, any case.
    name: str | None = None
    #: Registered strictly before / after (unix seconds).
    registered_before: float | None = None
    registered_after: float | None = None
    #: Last used (or, never used, registered) at least this many seconds ago.
    idle_for: float | None = None

    @classmethod
    def from_query(cls, query: MultiMapping[str], extra: Collection[str] = ()) -> ClientFilter:
        """The filter of a query string; ``extra`` names other parameters the caller reads
        (they are skipped).  ``status`` may repeat (or list values with commas); any other
        parameter given twice, and any unknown one, is refused."""
        _no_unknown(query.keys(), (*FILTER_KEYS, *extra), "parameter")
        values: dict[str, object] = {}
        for key in FILTER_KEYS:
            given = query.getall(key, [])
            if not given:
                continue
            if key == "status":
                values[key] = [part for value in given for part in value.split(",")]
            elif len(given) > 1:
                raise FilterError(key, "given more than once")
            else:
                values[key] = given[0]
        return cls.build(values)

    @classmethod
    def from_json(cls, value: object) -> ClientFilter:
        """The filter of a JSON object: the query's keys; ``status`` a string or a list of
        them, times RFC 3339 strings or unix seconds, ``idle_for`` a duration or seconds."""
        if not isinstance(value, dict):
            raise FilterError("filter", "must be a JSON object")
        _no_unknown(value.keys(), FILTER_KEYS, "filter key")
        return cls.build(value)

    @classmethod
    def build(cls, values: Mapping[str, object]) -> ClientFilter:
        """The filter of checked values (the keys of :data:`FILTER_KEYS`)."""

        def get(key: str, parse: Callable[[str, object], Any]) -> Any:
            value = values.get(key)
            return None if value is None else parse(key, value)

        return cls(
            vendor=get("vendor", parse_text),
            source=get("source", parse_source),
            statuses=get("status", parse_statuses) or frozenset(),
            tenant=get("tenant", parse_tenant),
            name=get("name", parse_glob),
            registered_before=get("registered_before", parse_time),
            registered_after=get("registered_after", parse_time),
            idle_for=get("idle_for", parse_duration),
        )

    @property
    def empty(self) -> bool:
        return self == ClientFilter()

    def matches(self, entry: ClientEntry, last_used: float | None, now: float) -> bool:
        """Whether ``entry`` (last used at ``last_used``, ``None``: never) matches.  A client
        without a name never matches a ``name`` pattern."""
        if self.vendor is not None and entry.vendor != self.vendor:
            return False
        if self.source is not None and entry.source is not self.source:
            return False
        if self.statuses and entry.status not in self.statuses:
            return False
        if self.tenant is not None and entry.tenant != self.tenant:
            return False
        if self.name is not None and not glob_matches(self.name, entry.client_name):
            return False
        if self.registered_before is not None and entry.registered_at >= self.registered_before:
            return False
        if self.registered_after is not None and entry.registered_at <= self.registered_after:
            return False
        if self.idle_for is not None:
            since = entry.registered_at if last_used is None else last_used
            return now - since >= self.idle_for
        return True

    def describe(self) -> dict[str, Any]:
        """The filter as JSON, for audit events: only what was set."""
        out: dict[str, Any] = {
            "vendor": self.vendor,
            "source": None if self.source is None else self.source.value,
            "status": sorted(s.value for s in self.statuses) or None,
            "tenant": self.tenant,
            "name": self.name,
            "registered_before": self.registered_before,
            "registered_after": self.registered_after,
            "idle_for": self.idle_for,
        }
        return {key: value for key, value in out.items() if value is not None}


def _no_unknown(keys: Iterable[str], known: Sequence[str], what: str) -> None:
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise FilterError(
            unknown[0][:MAX_TEXT], f"unknown {what}; known: {', '.join(sorted(known))}"
        )


def parse_text(param: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise FilterError(param, f"a non-empty string of at most {MAX_TEXT} characters")
    return value


def parse_tenant(param: str, value: object) -> str:
    text = parse_text(param, value)
    if "/" in text:
        raise FilterError(param, "a realm name (no '/')")
    return text


def parse_source(param: str, value: object) -> Source:
    try:
        return Source(value)
    except ValueError:
        known = ", ".join(s.value for s in Source)
        raise FilterError(param, f"one of {known}, not {_show(value)}") from None


def parse_statuses(param: str, value: object) -> frozenset[Status]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise FilterError(param, "a status or a non-empty list of them")
    out = set()
    for item in items:
        try:
            out.add(Status(item))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise FilterError(param, f"one of {known}, not {_show(item)}") from None
    return frozenset(out)


def parse_glob(param: str, value: object) -> str:
    return parse_text(param, value)


@functools.lru_cache(maxsize=64)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.casefold()))


def glob_matches(pattern: str, name: str | None) -> bool:
    """``fnmatch`` semantics, case-insensitively (by case folding both sides)."""
    return name is not None and _glob(pattern).match(name.casefold()) is not None


_UNIX = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)
_TIME_FORMS = "an RFC 3339 timestamp (2024-05-01T12:00:00Z), a date (UTC), or unix seconds"


def parse_time(param: str, value: object) -> float:
    """Unix seconds of an RFC 3339 date-time (with its offset), a bare date (midnight
    UTC), or unix seconds (a number, or digits in a string)."""
    if isinstance(value, bool):
        raise FilterError(param, _TIME_FORMS)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise FilterError(param, _TIME_FORMS)
        return float(value)
    if not isinstance(value, str):
        raise FilterError(param, _TIME_FORMS)
    if _UNIX.fullmatch(value):
        return float(value)
    found = _RFC3339.fullmatch(value)
    if found is None:
        raise FilterError(param, f"{_TIME_FORMS}, not {_show(value)}")
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    try:
        zone = _zone(offset)
        when = datetime.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        raise FilterError(param, f"not a valid date and time: {_show(value)}") from None
    return when.timestamp() + (float(fraction) if fraction else 0.0)


def _zone(offset: str | None) -> datetime.tzinfo:
    if offset is None or offset in ("Z", "z"):
        return datetime.UTC
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if minutes >= 60:
        raise ValueError("offset minutes")
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:[0-9]{1,9}[smhdw])+")
_PART = re.compile(r"([0-9]+)([smhdw])")


def parse_duration(param: str, value: object) -> float:
    """Seconds of ``30d``, ``12h``, ``15m``, ``90s``, ``2w`` or a sum (``1d12h``); in
    JSON also a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise FilterError(param, "a duration such as 30d, 12h, 15m or 90s")
        return float(value)
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise FilterError(param, f"a duration such as 30d, 12h, 15m or 90s, not {_show(value)}")
    return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value)))


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise FilterError("limit", f"a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def parse_flag(param: str, value: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise FilterError(param, "true or false")


def _show(value: object) -> str:
    return quote_value(value, 60) if isinstance(value, str) else type(value).__name__


# --------------------------------------------------------------------------- pages

SortKey = tuple[float, str, str]


def sort_key(entry: ClientEntry) -> SortKey:
    """Listing order: registration time, then tenant, then client id."""
    return (entry.registered_at, entry.tenant or "", entry.client_id)


def encode_cursor(entry: ClientEntry) -> str:
    """An opaque cursor after ``entry``: its sort key, as base64url JSON."""
    raw = json.dumps([entry.registered_at, entry.tenant, entry.client_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key a cursor of :func:`encode_cursor` is after."""
    bad = FilterError("cursor", "not a cursor this API answered")
    if not cursor or len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        registered_at, tenant, client_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if (
        isinstance(registered_at, bool)
        or not isinstance(registered_at, int | float)
        or not math.isfinite(registered_at)
        or not (tenant is None or isinstance(tenant, str))
        or not isinstance(client_id, str)
    ):
        raise bad
    return (float(registered_at), tenant or "", client_id)


def page(
    ordered: Sequence[ClientEntry], after: SortKey | None, limit: int
) -> tuple[list[ClientEntry], str | None]:
    """The entries of ``ordered`` (sorted by :func:`sort_key`) after the cursor's key, at
    most ``limit``, and the cursor of the next page (``None`` on the last)."""
    start = 0 if after is None else _first_after(ordered, after)
    chunk = list(ordered[start : start + limit])
    more = start + limit < len(ordered)
    return chunk, encode_cursor(chunk[-1]) if more and chunk else None


def _first_after(ordered: Sequence[ClientEntry], after: SortKey) -> int:
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if sort_key(ordered[middle]) <= after:
            low = middle + 1
        else:
            high = middle
    return low


def parse_page(query: MultiMapping[str]) -> tuple[SortKey | None, int]:
    """``cursor`` and ``limit`` of a list query."""
    for key in ("cursor", "limit"):
        if len(query.getall(key, [])) > 1:
            raise FilterError(key, "given more than once")
    cursor = query.get("cursor")
    return (None if cursor is None else decode_cursor(cursor)), parse_limit(query.get("limit"))


def tally(entries: Iterable[ClientEntry]) -> dict[str, Any]:
    """The counts of ``GET /-/admin/clients/stats``; a client without a tenant counts
    under ``""``."""
    by_status = {status.value: 0 for status in Status}
    by_source = {source.value: 0 for source in Source}
    by_vendor: dict[str, int] = {}
    live_by_vendor: dict[str, int] = {}
    by_tenant: dict[str, int] = {}
    total = live = deleting = 0
    for entry in entries:
        total += 1
        live += entry.live
        deleting += entry.deleting
        by_status[entry.status.value] += 1
        by_source[entry.source.value] += 1
        by_vendor[entry.vendor] = by_vendor.get(entry.vendor, 0) + 1
        if entry.live:
            live_by_vendor[entry.vendor] = live_by_vendor.get(entry.vendor, 0) + 1
        tenant = entry.tenant or ""
        by_tenant[tenant] = by_tenant.get(tenant, 0) + 1
    return {
        "total": total,
        "live": live,
        "deleting": deleting,
        "by_status": by_status,
        "by_vendor": dict(sorted(by_vendor.items())),
        "live_by_vendor": dict(sorted(live_by_vendor.items())),
        "by_source": by_source,
        "by_tenant": dict(sorted(by_tenant.items())),
    }


# --------------------------------------------------------------------------- handlers

Stage = Callable[..., Awaitable[web.StreamResponse]]


async def _run(request: web.Request, event: str, stage: Stage, *args: Any) -> web.StreamResponse:
    exchange = Exchange(request, request.app[GATEWAY], event)
    return await exchange.run(stage(exchange, *args))


async def list_clients(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_LIST, _list)


async def client_stats(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_STATS, _stats)


async def bulk_delete(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_BULK, _bulk_delete)


async def client_item(request: web.Request) -> web.StreamResponse:
    client_id = request.match_info["client_id"]
    if request.method == "DELETE":
        return await _run(request, EVENT_DELETED, _delete, client_id)
    return await _run(request, EVENT_SHOW, _show_client, client_id)


async def approve(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_APPROVED, _approve, request.match_info["client_id"])


async def reject(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_REJECTED, _reject, request.match_info["client_id"])


async def lifecycle_run(request: web.Request) -> web.StreamResponse:
    return await _run(request, EVENT_LIFECYCLE, _lifecycle)


def _admin(exchange: Exchange, allowed: tuple[str, ...]) -> str | None:
    """Refuse unless authenticated and the method is ``allowed``; the acting admin
    credential's name (its environment variable)."""
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    check_admin(gateway.settings.admin, request.headers.getall("Authorization", []))
    actor = gateway.settings.admin.token_env
    record.extra["admin_token_name"] = actor
    if request.method not in allowed:
        raise rules.ADMIN_METHOD.refuse(
            f"{request.method} is not allowed here; use {' or '.join(allowed)}",
            allow=", ".join(allowed),
        )
    return actor


async def _list(exchange: Exchange) -> web.StreamResponse:
    _admin(exchange, ("GET",))
    query, record = exchange.request.query, exchange.record
    chosen = _checked(lambda: ClientFilter.from_query(query, extra=("limit", "cursor")))
    after, limit = _checked(lambda: parse_page(query))
    entries, used = await _snapshot(exchange.gateway)
    now = time.time()
    matched = sorted(
        (e for e in entries if chosen.matches(e, used.get(_key(e)), now)), key=sort_key
    )
    chunk, next_cursor = page(matched, after, limit)
    record.tenant = chosen.tenant
    record.extra.update(filter=chosen.describe(), total=len(matched), returned=len(chunk))
    _allowed(exchange)
    body = {
        "clients": [e.public(used.get(_key(e))) for e in chunk],
        "next_cursor": next_cursor,
        "total": len(matched),
    }
    return _json(200, body, record.request_id)


async def _stats(exchange: Exchange) -> web.StreamResponse:
    _admin(exchange, ("GET",))
    chosen = _checked(lambda: ClientFilter.from_query(exchange.request.query))
    entries, used = await _snapshot(exchange.gateway)
    now = time.time()
    counts = tally(e for e in entries if chosen.matches(e, used.get(_key(e)), now))
    exchange.record.extra.update(filter=chosen.describe(), total=counts["total"])
    _allowed(exchange)
    return _json(200, counts, exchange.record.request_id)


async def _show_client(exchange: Exchange, client_id: str) -> web.StreamResponse:
    _admin(exchange, ("GET", "DELETE"))
    tenant, _ = _item_query(exchange)
    entry = await _entry(exchange, tenant, client_id)
    last = await _storage(exchange.gateway.registry.last_used(tenant, client_id))
    _allowed(exchange)
    return _json(200, entry.public(last), exchange.record.request_id)


async def _approve(exchange: Exchange, client_id: str) -> web.StreamResponse:
    """pending -> active, compare-and-set against the entry as read."""
    actor = _admin(exchange, ("POST",))
    gateway = exchange.gateway
    tenant, _ = _item_query(exchange)
    entry = await _entry(exchange, tenant, client_id)
    if entry.status is not Status.PENDING or entry.deleting:
        why = "its removal is under way" if entry.deleting else f"it is {entry.status.value}"
        raise rules.ADMIN_STATUS.refuse(f"only a pending client can be approved; {why}")
    approved = entry.with_(
        status=Status.ACTIVE, status_changed_at=time.time(), reason="approved", changed_by=actor
    )
    swapped = await _storage(gateway.registry.replace(entry, approved))
    gateway.gate.forget(tenant, client_id)
    if not swapped:
        raise _changed()
    last = await _storage(gateway.registry.last_used(tenant, client_id))
    _allowed(exchange)
    return _json(200, approved.public(last), exchange.record.request_id)


async def _reject(exchange: Exchange, client_id: str) -> web.StreamResponse:
    """Rejected at once (refused at the authorization and token endpoints from then on),
    then deleted upstream; a failed upstream delete is retried by the lifecycle job."""
    actor = _admin(exchange, ("POST",))
    gateway = exchange.gateway
    tenant, _ = _item_query(exchange)
    entry = await _entry(exchange, tenant, client_id)
    if entry.status not in LIVE:
        raise rules.ADMIN_STATUS.refuse(
            f"only a pending or active client can be rejected; it is {entry.status.value}"
        )
    outcome = await remove(gateway, entry, reason="rejected", final=Status.REJECTED, actor=actor)
    gateway.gate.forget(tenant, client_id)
    _note_outcome(exchange, outcome)
    if outcome.result == "rejected" and outcome.entry is not None:
        done, upstream_deleted = outcome.entry, True
    elif outcome.result == "failed":
        fresh = await _storage(gateway.registry.get(tenant, client_id))
        if fresh is None or fresh.status is not Status.REJECTED:
            raise rules.storage_unavailable()
        done, upstream_deleted = fresh, False
    else:
        raise _not_removed(outcome)
    last = await _storage(gateway.registry.last_used(tenant, client_id))
    body: dict[str, Any] = {**done.public(last), "upstream_deleted": upstream_deleted}
    if not upstream_deleted:
        body["upstream_error"] = outcome.error
    _allowed(exchange)
    return _json(200, body, exchange.record.request_id)


async def _delete(exchange: Exchange, client_id: str) -> web.StreamResponse:
    actor = _admin(exchange, ("GET", "DELETE"))
    gateway = exchange.gateway
    tenant, forget = _item_query(exchange, forget=True)
    entry = await _entry(exchange, tenant, client_id)
    if forget:
        return await _forget(exchange, entry)
    if entry.status is Status.DELETED:
        raise rules.ADMIN_STATUS.refuse(
            "the client is deleted already; DELETE with ?forget=true drops its record"
        )
    if entry.status is Status.REJECTED and not entry.deleting:
        raise rules.ADMIN_STATUS.refuse("the client is rejected and deleted upstream already")
    final = Status.REJECTED if entry.status is Status.REJECTED else Status.DELETED
    outcome = await remove(gateway, entry, reason="admin", final=final, actor=actor)
    gateway.gate.forget(tenant, client_id)
    _note_outcome(exchange, outcome)
    if outcome.result == "failed":
        raise _delete_failed(outcome)
    if not outcome.done or outcome.entry is None:
        raise _not_removed(outcome)
    last = await _storage(gateway.registry.last_used(tenant, client_id))
    _allowed(exchange)
    return _json(200, outcome.entry.public(last), exchange.record.request_id)


async def _forget(exchange: Exchange, entry: ClientEntry) -> web.StreamResponse:
    """Drop the record, upstream untouched (the client was deleted there some other way);
    a live client stops counting against the quotas."""
    gateway, record = exchange.gateway, exchange.record
    record.extra["forget"] = True
    if not await _storage(gateway.registry.forget(entry)):
        raise _changed()
    if entry.live:
        await _storage(gateway.registry.release(entry.tenant, entry.vendor_key))
    gateway.gate.forget(entry.tenant, entry.client_id)
    _allowed(exchange)
    body = {"forgotten": True, "client_id": entry.client_id, "tenant": entry.tenant}
    return _json(200, body, record.request_id)


async def _bulk_delete(exchange: Exchange) -> web.StreamResponse:
    actor = _admin(exchange, ("POST",))
    request, gateway, record = exchange.request, exchange.gateway, exchange.record
    if request.query:
        raise rules.ADMIN_INVALID.refuse("a bulk delete takes its filter in the JSON body")
    check_content_headers(request.headers)
    body = _parse(await read_body(request, MAX_BODY, gateway.settings.limits.body_timeout))
    chosen, dry_run, expected = _checked(lambda: bulk_fields(body))
    entries, used = await _snapshot(gateway)
    now = time.time()
    targets = sorted(
        (
            e
            for e in entries
            if (e.live or e.deleting) and chosen.matches(e, used.get(_key(e)), now)
        ),
        key=sort_key,
    )
    record.extra.update(filter=chosen.describe(), dry_run=dry_run, count=len(targets))
    if dry_run:
        _allowed(exchange)
        ids = [e.client_id for e in targets[:MAX_LISTED_IDS]]
        answer = {"dry_run": True, "count": len(targets), "client_ids": ids}
        return _json(200, answer, record.request_id)
    if expected != len(targets):
        raise rules.ADMIN_COUNT_CHANGED.refuse(
            f"the filter matches {len(targets)} clients now, not the expected {expected}; "
            "run it with dry_run first"
        )
    outcomes = await _remove_all(gateway, targets, actor)
    failed = [
        {
            "client_id": e.client_id,
            "tenant": e.tenant,
            "result": o.result,
            "error": o.error or _NOT_REMOVED.get(o.result, o.result),
        }
        for e, o in zip(targets, outcomes, strict=True)
        if not o.done
    ]
    deleted = len(targets) - len(failed)
    record.extra.update(deleted=deleted, failed=len(failed))
    _allowed(exchange)
    answer = {"dry_run": False, "deleted": deleted, "failed": failed, "count": len(targets)}
    return _json(200, answer, record.request_id)


def bulk_fields(body: Mapping[str, Any]) -> tuple[ClientFilter, bool, int | None]:
    """A bulk delete's filter, ``dry_run`` and ``expected_count``, checked.  Pure."""
    _no_unknown(body.keys(), _BULK_FIELDS, "field")
    if "filter" not in body:
        raise FilterError("filter", "required (the clients to delete)")
    chosen = ClientFilter.from_json(body["filter"])
    if chosen.empty:
        raise FilterError("filter", _EMPTY_FILTER)
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise FilterError("dry_run", "true or false")
    expected = body.get("expected_count")
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, int) or expected < 0
    ):
        raise FilterError("expected_count", "a whole number from 0")
    if not dry_run and expected is None:
        raise FilterError(
            "expected_count",
            "required unless dry_run: the count a dry run of the same filter answered",
        )
    return chosen, dry_run, expected


async def _remove_all(
    gateway: Gateway, targets: Sequence[ClientEntry], actor: str | None
) -> list[Outcome]:
    """Each removed through :func:`remove` (a few at once), each audited on its own."""
    limit = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(entry: ClientEntry) -> Outcome:
        final = Status.REJECTED if entry.status is Status.REJECTED else Status.DELETED
        async with limit:
            outcome = await remove(gateway, entry, reason="admin_bulk", final=final, actor=actor)
        gateway.gate.forget(entry.tenant, entry.client_id)
        audit_removal(gateway, entry, "admin_bulk", outcome, actor=actor, event=CLEANUP_EVENT)
        return outcome

    return list(await asyncio.gather(*(one(e) for e in targets)))


async def _lifecycle(exchange: Exchange) -> web.StreamResponse:
    _admin(exchange, ("POST",))
    query, gateway, record = exchange.request.query, exchange.gateway, exchange.record
    dry_run = _checked(lambda: _dry_run_param(query))
    report = await run_once(gateway, dry_run=dry_run)
    if not report.dry_run:
        for action in report.actions:
            tenant, client_id = action.get("tenant"), action.get("client_id")
            if isinstance(client_id, str) and (tenant is None or isinstance(tenant, str)):
                gateway.gate.forget(tenant, client_id)
    record.extra.update(
        dry_run=report.dry_run,
        ran=report.ran,
        examined=report.examined,
        actions=len(report.actions),
        error=report.error,
    )
    _allowed(exchange)
    return _json(200, report.as_dict(), record.request_id)


def _dry_run_param(query: MultiMapping[str]) -> bool | None:
    _no_unknown(query.keys(), ("dry_run",), "parameter")
    values = query.getall("dry_run", [])
    if len(values) > 1:
        raise FilterError("dry_run", "given more than once")
    return parse_flag("dry_run", values[0]) if values else None


# --------------------------------------------------------------------------- helpers


def _item_query(exchange: Exchange, *, forget: bool = False) -> tuple[str | None, bool]:
    """``tenant`` (and, on DELETE, ``forget``) of a one-client call."""
    query = exchange.request.query

    def parse() -> tuple[str | None, bool]:
        _no_unknown(query.keys(), ("tenant", "forget") if forget else ("tenant",), "parameter")
        for key in query:
            if len(query.getall(key)) > 1:
                raise FilterError(key, "given more than once")
        tenant = query.get("tenant")
        flag = query.get("forget")
        return (
            None if tenant is None else parse_tenant("tenant", tenant),
            False if flag is None else parse_flag("forget", flag),
        )

    tenant, forgetting = _checked(parse)
    exchange.record.tenant = tenant
    return tenant, forgetting


async def _entry(exchange: Exchange, tenant: str | None, client_id: str) -> ClientEntry:
    record = exchange.record
    record.client_id = client_id
    entry = await _storage(exchange.gateway.registry.get(tenant, client_id))
    if entry is None:
        if tenant is not None:
            where = f" in tenant {quote_value(tenant)}"
        elif exchange.gateway.settings.upstream.profile == "keycloak":
            where = " without a tenant (give the realm as ?tenant=)"
        else:
            where = ""
        raise rules.ADMIN_NO_CLIENT.refuse(
            f"the registry has no client {quote_value(client_id)}{where}"
        )
    record.vendor, record.client_name = entry.vendor, entry.client_name
    record.extra["status_before"] = entry.status.value
    return entry


async def _snapshot(
    gateway: Gateway,
) -> tuple[list[ClientEntry], dict[tuple[str | None, str], float]]:
    entries = await _storage(gateway.registry.entries())
    used = await _storage(gateway.registry.all_last_used())
    return entries, used


def _key(entry: ClientEntry) -> tuple[str | None, str]:
    return (entry.tenant, entry.client_id)


def _note_outcome(exchange: Exchange, outcome: Outcome) -> None:
    record = exchange.record
    record.upstream_status = outcome.upstream_status
    record.extra.update(result=outcome.result, delete_error=outcome.error)


_NOT_REMOVED = {
    "busy": "another replica is removing this client right now; read it again in a moment",
    "changed": "the client changed meanwhile (another administrator or the lifecycle job); "
    "read it again",
}


def _not_removed(outcome: Outcome) -> OAuthError:
    return rules.ADMIN_STATUS.refuse(_NOT_REMOVED.get(outcome.result, outcome.result))


def _changed() -> OAuthError:
    return rules.ADMIN_STATUS.refuse(_NOT_REMOVED["changed"])


def _delete_failed(outcome: Outcome) -> OAuthError:
    """502 for a failed upstream delete (the client is kept, flagged ``deleting``, and the
    lifecycle job retries); 503 when it was the storage that failed."""
    error = outcome.error or "unknown error"
    if outcome.storage_failed:
        return rules.storage_unavailable()
    return rules.ADMIN_DELETE_FAILED.refuse(
        f"the upstream delete failed ({error}); the client is kept, flagged deleting, and "
        "the lifecycle job retries it; once it is deleted in the authorization server by "
        "other means, DELETE with ?forget=true drops its record"
    )


def _checked(parse: Callable[[], Any]) -> Any:
    """``parse()``, a :class:`FilterError` becoming ``400 admin.invalid_request``."""
    try:
        return parse()
    except FilterError as exc:
        raise rules.ADMIN_INVALID.refuse(str(exc)) from None


def _allowed(exchange: Exchange) -> None:
    exchange.record.decision, exchange.record.rule = "allowed", rules.ALLOW_ADMIN.id


async def _storage(operation: Awaitable[Any]) -> Any:
    try:
        return await operation
    except StorageError:
        raise rules.storage_unavailable() from None


def _parse(raw: bytes) -> dict[str, Any]:
    """The body as one JSON object, by the registration body's strict parser; its
    refusals become admin ones."""
    try:
        return parse_body(raw)
    except OAuthError as exc:
        raise rules.ADMIN_INVALID.refuse(exc.description) from None


def _json(status: int, body: Mapping[str, Any], request_id: str) -> web.Response:
    return json_response(status, body, request_id)


def add_routes(app: web.Application) -> None:
    """The fixed paths first, for their one method each: another method on them (or GET on
    ``.../delete``) is a client of that id."""
    router = app.router
    router.add_route("*", PATH, list_clients)
    router.add_route("GET", STATS_PATH, client_stats)
    router.add_route("POST", BULK_PATH, bulk_delete)
    router.add_route("*", PATH + "/{client_id}/approve", approve)
    router.add_route("*", PATH + "/{client_id}/reject", reject)
    router.add_route("*", PATH + "/{client_id}", client_item)
    router.add_route("*", LIFECYCLE_PATH, lifecycle_run)
