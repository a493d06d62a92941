"""The admin API's client filter, pagination and counts (gateway.registry.admin), pure.

Why they matter: the same filter chooses what a bulk delete removes upstream.  A glob that
matches more than it says, a timestamp read in the wrong zone, or an ``idle_for`` that
counts a never-used client as fresh would delete clients the operator did not mean; a
parameter the API silently ignored (a typo) would widen the filter to everything.  And a
cursor that skips or repeats a client would make ``list --all`` lie.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from multidict import MultiDict

from gateway.registry.admin import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ClientFilter,
    FilterError,
    bulk_fields,
    decode_cursor,
    encode_cursor,
    glob_matches,
    page,
    parse_duration,
    parse_limit,
    parse_page,
    parse_time,
    sort_key,
    tally,
)
from gateway.registry.entry import ClientEntry, Source, Status

NOW = 1_800_000_000.0
DAY = 86400.0


def entry(
    client_id: str = "c1",
    *,
    tenant: str | None = None,
    status: Status = Status.ACTIVE,
    vendor: str = "claude",
    source: Source = Source.DCR,
    name: str | None = "Claude",
    registered_at: float = NOW - 10 * DAY,
    deleting: bool = False,
) -> ClientEntry:
    return ClientEntry(
        client_id=client_id,
        tenant=tenant,
        source=source,
        vendor=vendor,
        vendor_key=f"managed:{vendor}",
        client_name=name,
        redirect_uris=("https://example.com/cb",),
        software_id=None,
        registered_at=registered_at,
        registered_ip="192.0.2.1",
        initial_access_token_name=None,
        status=status,
        sealed_token="sealed-secret",
        deleting=deleting,
    )


def query(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def from_query(*pairs: tuple[str, str]) -> ClientFilter:
    return ClientFilter.from_query(query(*pairs))


def refused(param: str, parse, *args) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse(*args)
    assert caught.value.param == param, str(caught.value)
    assert str(caught.value).startswith(f"{param}: ")
    return caught.value


# --------------------------------------------------------------------------- name globs


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("claude", "Claude", True),
        ("CLAUDE", "claude", True),
        ("claude*", "Claude Desktop", True),
        ("*desktop", "Claude Desktop", True),
        ("*cursor*", "My Cursor IDE", True),
        ("c?aude", "Claude", True),
        ("c?aude", "Cllaude", False),
        ("claude", "Claude Desktop", False),  # a whole-name match, not a substring
        ("claude", "My Claude", False),
        ("[cm]*", "Mistral", True),
        ("[cm]*", "Zed", False),
        ("a.b", "axb", False),  # '.' is literal, not a regex wildcard
        ("a+", "aaa", False),
        ("*", "", True),
        ("STRASSE", "straße", True),  # case folding, not just lower()
        ("line*", "line one\nline two", True),  # '*' spans line breaks
    ],
)
def test_name_is_a_case_insensitive_fnmatch_glob(pattern, name, expected):
    assert glob_matches(pattern, name) is expected


def test_a_client_without_a_name_never_matches_a_name_pattern():
    """Not even ``*``: a bulk delete by name removes named clients only."""
    assert not glob_matches("*", None)
    chosen = from_query(("name", "*"))
    assert not chosen.matches(entry(name=None), None, NOW)
    assert chosen.matches(entry(name="Anything"), None, NOW)


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-15T08:00:00Z", datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC)),
        ("2027-01-15t08:00:00z", datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC)),
        ("2027-01-15 08:00:00Z", datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC)),
        ("2027-01-15T10:00:00+02:00", datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC)),
        ("2027-01-15T03:30:00-04:30", datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC)),
        ("2027-01-15", datetime.datetime(2027, 1, 15, tzinfo=datetime.UTC)),  # midnight UTC
    ],
)
def test_times_are_rfc3339_with_their_offset(text, expected):
    assert parse_time("registered_before", text) == expected.timestamp()


def test_fractional_seconds_are_kept():
    assert parse_time("t", "2027-01-15T08:00:00.250Z") == pytest.approx(
        datetime.datetime(2027, 1, 15, 8, tzinfo=datetime.UTC).timestamp() + 0.25
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1800000000", 1_800_000_000.0), ("1800000000.5", 1_800_000_000.5), (1_700_000_000, 1.7e9)],
)
def test_times_may_be_unix_seconds(value, expected):
    assert parse_time("registered_after", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2027-01-15T08:00:00",  # no offset: ambiguous, refused
        "2027-01-15T08:00Z",  # no seconds
        "2027-13-01T00:00:00Z",
        "2027-02-30",
        "2027-01-15T24:00:00Z",
        "2027-01-15T08:00:00+25:00",
        "2027-01-15T08:00:00+02:99",
        "20270115T080000Z",  # ISO 8601 basic format is not RFC 3339
        "\u0662\u0660\u0662\u0667-01-15",  # Arabic-Indic digits
        "-5",
        "1e9",
        True,
        None,
        [],
        float("inf"),
        float("nan"),
        -1,
    ],
)
def test_anything_else_is_not_a_time(value):
    error = refused("registered_before", parse_time, "registered_before", value)
    assert "RFC 3339" in str(error) or "valid date" in str(error)


def test_registered_before_and_after_are_strict_bounds():
    t = NOW - 5 * DAY
    before, after = (
        from_query(("registered_before", str(int(t)))),
        from_query(("registered_after", str(int(t)))),
    )
    assert before.matches(entry(registered_at=t - 1), None, NOW)
    assert not before.matches(entry(registered_at=t), None, NOW)
    assert after.matches(entry(registered_at=t + 1), None, NOW)
    assert not after.matches(entry(registered_at=t), None, NOW)


def test_a_time_window():
    chosen = from_query(
        ("registered_after", "2027-01-01T00:00:00Z"), ("registered_before", "2027-02-01")
    )
    inside = datetime.datetime(2027, 1, 20, tzinfo=datetime.UTC).timestamp()
    outside = datetime.datetime(2027, 2, 2, tzinfo=datetime.UTC).timestamp()
    assert chosen.matches(entry(registered_at=inside), None, NOW)
    assert not chosen.matches(entry(registered_at=outside), None, NOW)


# --------------------------------------------------------------------------- idle_for


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("1d12h", 86400 + 43200),
        ("0s", 0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration("idle_for", text) == seconds


@pytest.mark.parametrize(
    "value", ["", "30", "30 d", "30D", "d", "1.5h", "-1d", "1y", "30days", "1234567890d", True]
)
def test_anything_else_is_not_a_duration(value):
    refused("idle_for", parse_duration, "idle_for", value)


def test_idle_for_counts_from_the_last_use():
    chosen = from_query(("idle_for", "30d"))
    old = entry(registered_at=NOW - 100 * DAY)
    assert chosen.matches(old, NOW - 31 * DAY, NOW)
    assert chosen.matches(old, NOW - 30 * DAY, NOW)  # "at least that long ago"
    assert not chosen.matches(old, NOW - 29 * DAY, NOW)


def test_idle_for_counts_a_never_used_client_from_its_registration():
    """A client registered long ago and never used is idle; one registered an hour ago is
    not, though it has never been used either."""
    chosen = from_query(("idle_for", "30d"))
    assert chosen.matches(entry(registered_at=NOW - 31 * DAY), None, NOW)
    assert not chosen.matches(entry(registered_at=NOW - 3600), None, NOW)


# --------------------------------------------------------------------------- the rest


def test_statuses_may_repeat_or_be_listed_with_commas():
    repeated = from_query(("status", "pending"), ("status", "active"))
    listed = from_query(("status", "pending,active"))
    assert repeated.statuses == listed.statuses == {Status.PENDING, Status.ACTIVE}
    assert repeated.matches(entry(status=Status.PENDING), None, NOW)
    assert repeated.matches(entry(status=Status.ACTIVE), None, NOW)
    assert not repeated.matches(entry(status=Status.DELETED), None, NOW)
    assert not repeated.matches(entry(status=Status.REJECTED), None, NOW)


def test_vendor_source_and_tenant_match_exactly():
    chosen = from_query(("vendor", "claude"), ("source", "cimd"), ("tenant", "acme"))
    good = entry(vendor="claude", source=Source.CIMD, tenant="acme")
    assert chosen.matches(good, None, NOW)
    assert not chosen.matches(good.with_(vendor="Claude"), None, NOW)
    assert not chosen.matches(good.with_(source=Source.DCR), None, NOW)
    assert not chosen.matches(good.with_(tenant="acme2"), None, NOW)
    assert not chosen.matches(good.with_(tenant=None), None, NOW)


def test_an_empty_filter_matches_everything():
    chosen = from_query()
    assert chosen.empty
    for status in Status:
        assert chosen.matches(entry(status=status, name=None), None, NOW)


@pytest.mark.parametrize(
    ("pairs", "param"),
    [
        ((("statuss", "pending"),), "statuss"),
        ((("limit", "10"),), "limit"),  # not a filter key unless the caller reads it
        ((("status", "live"),), "status"),
        ((("status", ""),), "status"),
        ((("status", "pending,"),), "status"),
        ((("source", "oidc"),), "source"),
        ((("vendor", ""),), "vendor"),
        ((("vendor", "a"), ("vendor", "b")), "vendor"),
        ((("name", "x" * 201),), "name"),
        ((("tenant", "a/b"),), "tenant"),
        ((("idle_for", "soon"),), "idle_for"),
        ((("registered_after", "now"),), "registered_after"),
    ],
)
def test_invalid_query_parameters_are_named(pairs, param):
    refused(param, from_query, *pairs)


def test_the_callers_own_parameters_are_skipped():
    chosen = ClientFilter.from_query(query(("limit", "5"), ("vendor", "x")), extra=("limit",))
    assert chosen == ClientFilter(vendor="x")


def test_a_json_filter_has_the_same_keys_with_json_values():
    chosen = ClientFilter.from_json(
        {
            "status": ["pending", "active"],
            "vendor": "cursor",
            "registered_before": 1_800_000_000,
            "registered_after": "2027-01-01T00:00:00Z",
            "idle_for": 3600,
            "name": "*IDE",
        }
    )
    assert chosen.statuses == {Status.PENDING, Status.ACTIVE}
    assert chosen.registered_before == 1_800_000_000.0
    assert chosen.idle_for == 3600.0
    assert ClientFilter.from_json({"status": "pending"}).statuses == {Status.PENDING}
    assert ClientFilter.from_json({"idle_for": "1d"}).idle_for == DAY


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ([], "filter"),
        ("status=pending", "filter"),
        ({"stauts": "pending"}, "stauts"),
        ({"status": []}, "status"),
        ({"status": [1]}, "status"),
        ({"status": {"pending": True}}, "status"),
        ({"vendor": 5}, "vendor"),
        ({"idle_for": True}, "idle_for"),
        ({"idle_for": -1}, "idle_for"),
        ({"registered_before": False}, "registered_before"),
    ],
)
def test_invalid_json_filters_are_named(value, param):
    refused(param, ClientFilter.from_json, value)


def test_describe_names_only_what_is_set():
    chosen = from_query(("status", "active"), ("status", "pending"), ("idle_for", "1h"))
    assert chosen.describe() == {"status": ["active", "pending"], "idle_for": 3600.0}
    assert from_query().describe() == {}


# --------------------------------------------------------------------------- bulk delete


def test_a_bulk_delete_needs_a_filter_and_an_expected_count():
    chosen, dry, expected = bulk_fields({"filter": {"status": "pending"}, "expected_count": 3})
    assert (chosen.statuses, dry, expected) == ({Status.PENDING}, False, 3)
    assert bulk_fields({"filter": {"status": "pending"}, "dry_run": True})[1:] == (True, None)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"dry_run": True}, "filter"),
        ({"filter": {}, "dry_run": True}, "filter"),  # everything must be spelled out
        ({"filter": {"status": "pending"}}, "expected_count"),
        ({"filter": {"status": "pending"}, "dry_run": False}, "expected_count"),
        ({"filter": {"status": "pending"}, "expected_count": -1}, "expected_count"),
        ({"filter": {"status": "pending"}, "expected_count": True}, "expected_count"),
        ({"filter": {"status": "pending"}, "expected_count": "3"}, "expected_count"),
        ({"filter": {"status": "pending"}, "dry_run": "yes"}, "dry_run"),
        ({"filter": {"status": "pending"}, "dry_run": True, "force": True}, "force"),
    ],
)
def test_invalid_bulk_deletes_are_named(body, param):
    refused(param, bulk_fields, body)


def test_the_empty_filter_refusal_says_how_to_spell_everything():
    error = refused("filter", bulk_fields, {"filter": {}, "expected_count": 9})
    assert '"status": ["pending", "active"]' in str(error)


# --------------------------------------------------------------------------- pages


def entries_in_order() -> list[ClientEntry]:
    made = [
        entry("b", registered_at=100.0),
        entry("a", registered_at=100.0),
        entry("a", tenant="t2", registered_at=100.0),
        entry("a", tenant="t1", registered_at=100.0),
        entry("z", registered_at=50.0),
        entry("q/w e", registered_at=300.5),
        entry("m", tenant="t1", registered_at=200.0),
    ]
    return sorted(made, key=sort_key)


def test_the_order_is_registration_time_then_tenant_then_client_id():
    ordered = [(e.registered_at, e.tenant, e.client_id) for e in entries_in_order()]
    assert ordered == [
        (50.0, None, "z"),
        (100.0, None, "a"),
        (100.0, None, "b"),
        (100.0, "t1", "a"),
        (100.0, "t2", "a"),
        (200.0, "t1", "m"),
        (300.5, None, "q/w e"),
    ]


def test_a_cursor_round_trips_its_sort_key():
    for item in entries_in_order():
        cursor = encode_cursor(item)
        assert cursor.isascii() and "=" not in cursor and "/" not in cursor and "+" not in cursor
        assert decode_cursor(cursor) == sort_key(item)


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
def test_following_cursors_visits_every_client_once(limit):
    ordered = entries_in_order()
    seen: list[ClientEntry] = []
    after = None
    for _ in range(20):
        chunk, next_cursor = page(ordered, after, limit)
        assert len(chunk) <= limit
        seen.extend(chunk)
        if next_cursor is None:
            break
        after = decode_cursor(next_cursor)
    assert seen == ordered


def test_the_last_page_has_no_cursor():
    ordered = entries_in_order()
    assert page(ordered, None, len(ordered))[1] is None
    assert page(ordered, None, len(ordered) - 1)[1] is not None
    assert page([], None, 10) == ([], None)


def test_a_cursor_survives_its_client_being_deleted_meanwhile():
    """The cursor is a position, not a client: the next page starts after it even when
    that client is no longer listed."""
    ordered = entries_in_order()
    _, cursor = page(ordered, None, 2)
    assert cursor is not None
    without = [e for e in ordered if e.client_id != "a" or e.tenant is not None]
    chunk, _ = page(without, decode_cursor(cursor), 2)
    assert [(e.tenant, e.client_id) for e in chunk] == [(None, "b"), ("t1", "a")]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "%%%",
        _b64(b"not json"),
        _b64(b"[1, null]"),
        _b64(b'{"a": 1}'),
        _b64(json.dumps(["1", None, "c"]).encode()),
        _b64(json.dumps([True, None, "c"]).encode()),
        _b64(json.dumps([1, 2, "c"]).encode()),
        _b64(json.dumps([1, None, 3]).encode()),
        _b64(b'[Infinity, null, "c"]'),
        "A" * 2000,
        "é",
    ],
)
def test_anything_else_is_not_a_cursor(cursor):
    refused("cursor", decode_cursor, cursor)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_LIMIT), ("1", 1), ("250", 250), (str(MAX_LIMIT), MAX_LIMIT)],
)
def test_limits(value, expected):
    assert parse_limit(value) == expected


@pytest.mark.parametrize("value", ["0", "1001", "-1", "ten", "", "1.5", "\uff11\uff10"])
def test_invalid_limits(value):
    refused("limit", parse_limit, value)


def test_page_parameters_are_read_once():
    assert parse_page(query()) == (None, DEFAULT_LIMIT)
    cursor = encode_cursor(entry(registered_at=5.0))
    assert parse_page(query(("cursor", cursor), ("limit", "7"))) == ((5.0, "", "c1"), 7)
    refused("limit", parse_page, query(("limit", "1"), ("limit", "2")))
    refused("cursor", parse_page, query(("cursor", cursor), ("cursor", cursor)))


# --------------------------------------------------------------------------- counts


def test_counts_cover_every_status_and_source_and_split_live_vendors():
    counts = tally(
        [
            entry("1", status=Status.ACTIVE, vendor="claude", tenant="t1"),
            entry("2", status=Status.PENDING, vendor="cursor", source=Source.CIMD),
            entry("3", status=Status.DELETED, vendor="claude", tenant="t1"),
            entry("4", status=Status.REJECTED, vendor="unknown", deleting=True),
        ]
    )
    assert counts == {
        "total": 4,
        "live": 2,
        "deleting": 1,
        "by_status": {"pending": 1, "active": 1, "rejected": 1, "deleted": 1},
        "by_vendor": {"claude": 2, "cursor": 1, "unknown": 1},
        "live_by_vendor": {"claude": 1, "cursor": 1},
        "by_source": {"dcr": 3, "cimd": 1},
        "by_tenant": {"": 2, "t1": 2},
    }
    assert tally([])["by_status"] == {"pending": 0, "active": 0, "rejected": 0, "deleted": 0}


def test_the_public_view_never_carries_the_sealed_token():
    """What every admin answer is built from."""
    shown = json.dumps(entry().public(NOW))
    assert "sealed-secret" not in shown
    assert "sealed_token" not in shown
