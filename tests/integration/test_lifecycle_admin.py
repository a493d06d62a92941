"""The admin API for registered clients against the real upstream, on both stores: list,
show, approve, reject, delete, bulk delete, stats, a lifecycle run; and that no
registration access token (nor its sealed form) ever shows in an answer, an audit event,
the logs or the storage."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import redis

from gateway.audit.logging import configure_logging
from gateway.registry.entry import Status
from gateway.storage import MemoryStorage
from tests.support import lifecycle
from tests.support.controls import assert_refused, bearer, call, register
from tests.support.lifecycle import (
    ADMIN_TOKEN,
    admin,
    age,
    app_client,
    authorize,
    claude_code,
    cleanups,
    core,
    cursor,
    entry_of,
    events_of,
    policy,
    token_request,
    update_of,
    upstream_update,
)

pytestmark = pytest.mark.integration

# The fixtures of tests.support.lifecycle these tests use by name.
storage = lifecycle.storage

APPROVAL = policy(approval={"required": True, "pending_ttl": "60s"})
ACTOR = "DCR_GATEWAY_ADMIN_TOKEN"  # the admin credential's name (tests.support.gateway)
#: What a Fernet token (a sealed registration access token) starts with.
FERNET_PREFIX = "gAAAAA"


async def start(gateway_factory, upstream, storage, pol=APPROVAL, **settings):
    return await gateway_factory(
        upstream.url, policy=pol, storage=storage, admin_token=ADMIN_TOKEN, **settings
    )


async def registered(session, gateway, body=None):
    answer = await register(session, gateway, body or app_client())
    assert answer.status == 201, answer
    return answer.body


def assert_admin_refused(answer, status: int, rule: str) -> None:
    assert answer.status == status, answer
    assert answer.rule == rule, answer


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("GET", "stats"),
        ("GET", "some-client"),
        ("POST", "some-client/approve"),
        ("POST", "some-client/reject"),
        ("DELETE", "some-client"),
        ("POST", "delete"),
        ("POST", "/-/admin/lifecycle/run"),
    ],
)
async def test_every_client_endpoint_needs_the_admin_token(
    upstream, gateway_factory, session, method, path
):
    """Without the admin bearer token (none, or a wrong one) every endpoint answers 401
    ``admin.unauthorized`` and changes nothing; without an admin token configured, 403
    ``admin.disabled``."""
    gateway = await start(gateway_factory, upstream, "memory://")
    client_id = (await registered(session, gateway))["client_id"]
    path = path.replace("some-client", client_id)
    body = {"filter": {"status": "pending"}, "expected_count": 1} if path == "delete" else None
    for token in (None, "not-the-admin-token-0123456789abcdef"):
        answer = await admin(session, gateway, method, path, body, token=token)
        assert_admin_refused(answer, 401, "admin.unauthorized")
    assert (await entry_of(gateway, client_id)).status is Status.PENDING
    assert client_id in upstream.client_ids()

    closed = await gateway_factory(upstream.url, policy=APPROVAL)
    answer = await admin(session, closed, method, path, body)
    assert answer.status == 403 and answer.rule == "admin.disabled", answer


# --------------------------------------------------------------------------- one client


async def test_approve_reject_delete_and_forget_one_client(
    upstream, gateway_factory, session, storage
):
    """Show, approve (once: a second approval is 409), reject (deleted upstream at once,
    then refused as ``client.rejected``), delete (deleted upstream, then 409 on a second
    delete), forget (the record is gone: 404), each audited under its own event with the
    admin credential's name."""
    gateway = await start(gateway_factory, upstream, storage)
    one, two, three = [(await registered(session, gateway))["client_id"] for _ in range(3)]

    shown = await admin(session, gateway, "GET", one)
    assert shown.status == 200, shown
    assert shown.body["client_id"] == one
    assert (shown.body["status"], shown.body["vendor"]) == ("pending", "unknown")
    assert shown.body["can_delete_upstream"] is True
    assert "sealed_token" not in shown.body and "registration_access_token" not in shown.body

    approved = await admin(session, gateway, "POST", f"{one}/approve")
    assert approved.status == 200, approved
    assert (approved.body["status"], approved.body["reason"], approved.body["changed_by"]) == (
        "active",
        "approved",
        ACTOR,
    )
    assert_admin_refused(
        await admin(session, gateway, "POST", f"{one}/approve"), 409, "admin.wrong_status"
    )
    passed = await token_request(session, gateway, one)
    assert passed.body["error"] == "invalid_grant"  # reached the upstream

    rejected = await admin(session, gateway, "POST", f"{two}/reject")
    assert rejected.status == 200, rejected
    assert (rejected.body["status"], rejected.body["upstream_deleted"]) == ("rejected", True)
    assert two not in upstream.client_ids()
    assert_refused(
        await token_request(session, gateway, two), 401, "invalid_client", "client.rejected"
    )
    page = await authorize(session, gateway, two)
    assert page.status == 403 and "Location" not in page.headers
    assert "client.rejected" in page.text
    assert_admin_refused(
        await admin(session, gateway, "POST", f"{two}/approve"), 409, "admin.wrong_status"
    )

    deleted = await admin(session, gateway, "DELETE", three)
    assert deleted.status == 200, deleted
    assert (deleted.body["status"], deleted.body["reason"]) == ("deleted", "admin")
    assert three not in upstream.client_ids()
    assert_admin_refused(await admin(session, gateway, "DELETE", three), 409, "admin.wrong_status")
    forgotten = await admin(session, gateway, "DELETE", three, params={"forget": "true"})
    assert forgotten.status == 200 and forgotten.body["forgotten"] is True, forgotten
    assert_admin_refused(await admin(session, gateway, "GET", three), 404, "admin.no_such_client")
    assert_admin_refused(
        await admin(session, gateway, "POST", "no-such-client/approve"),
        404,
        "admin.no_such_client",
    )

    for name, client_id in (
        ("admin.client.approved", one),
        ("admin.client.rejected", two),
        ("admin.client.deleted", three),
    ):
        done = events_of(gateway, name=name, client_id=client_id, decision="allowed")
        assert done and all(e["admin_token_name"] == ACTOR for e in done), name
    [rejected_event] = events_of(gateway, name="admin.client.rejected", client_id=two)
    assert (rejected_event["status_before"], rejected_event["result"]) == ("pending", "rejected")
    # Exactly one audit event per admin call (ten calls), none of them a cleanup event.
    assert len([e for e in gateway.events() if e["event"].startswith("admin.")]) == 10
    assert cleanups(gateway) == []


async def test_reject_holds_even_when_the_upstream_delete_fails(
    upstream, gateway_factory, session, storage
):
    """A client whose stored token is stale (it updated itself past the gateway): reject
    still takes effect at once (refused from then on), says the upstream delete failed,
    and leaves the client flagged for the job to retry; a plain delete of such a client
    answers 502 and keeps it."""
    gateway = await start(gateway_factory, upstream, storage)
    first = await registered(session, gateway)
    second = await registered(session, gateway)
    for client in (first, second):
        assert (await upstream_update(session, upstream, client)).status == 200

    rejected = await admin(session, gateway, "POST", f"{first['client_id']}/reject")
    assert rejected.status == 200, rejected
    assert rejected.body["status"] == "rejected"
    assert rejected.body["upstream_deleted"] is False
    assert "401" in rejected.body["upstream_error"]
    assert rejected.body["deleting"] is True
    assert first["client_id"] in upstream.client_ids()
    assert_refused(
        await token_request(session, gateway, first["client_id"]),
        401,
        "invalid_client",
        "client.rejected",
    )

    deleted = await admin(session, gateway, "DELETE", second["client_id"])
    assert_admin_refused(deleted, 502, "admin.upstream_delete_failed")
    assert "401" in deleted.body["error_description"]
    entry = await entry_of(gateway, second["client_id"])
    assert (entry.status, entry.deleting) == (Status.PENDING, True)
    assert second["client_id"] in upstream.client_ids()


# --------------------------------------------------------------------------- bulk


async def test_bulk_delete_by_vendor_deletes_exactly_that_vendors_clients(
    upstream, gateway_factory, session, storage
):
    """Two Cursor, two Claude Code and two unknown clients: the dry run counts and lists
    the two Cursor ones; a Cursor client registered meanwhile makes the counted delete
    409 ``admin.count_changed`` (nothing deleted); the recounted delete removes exactly the
    three Cursor clients, upstream and in the registry, each audited, and no other."""
    gateway = await start(gateway_factory, upstream, storage)
    bodies = [cursor(), cursor(), claude_code("a"), claude_code("b"), app_client(), app_client()]
    ids = [(await registered(session, gateway, body))["client_id"] for body in bodies]
    cursors, others = ids[:2], ids[2:]

    dry = await admin(
        session, gateway, "POST", "delete", {"filter": {"vendor": "cursor"}, "dry_run": True}
    )
    assert dry.status == 200, dry
    assert (dry.body["count"], sorted(dry.body["client_ids"])) == (2, sorted(cursors))
    assert set(cursors) <= set(upstream.client_ids())

    cursors.append((await registered(session, gateway, cursor()))["client_id"])
    stale = await admin(
        session, gateway, "POST", "delete", {"filter": {"vendor": "cursor"}, "expected_count": 2}
    )
    assert_admin_refused(stale, 409, "admin.count_changed")
    assert set(cursors) <= set(upstream.client_ids())
    assert cleanups(gateway) == []

    done = await admin(
        session, gateway, "POST", "delete", {"filter": {"vendor": "cursor"}, "expected_count": 3}
    )
    assert done.status == 200, done
    assert (done.body["deleted"], done.body["failed"], done.body["count"]) == (3, [], 3)
    remaining = set(upstream.client_ids())
    assert not set(cursors) & remaining
    assert set(others) <= remaining
    for client_id in cursors:
        entry = await entry_of(gateway, client_id)
        assert (entry.status, entry.reason, entry.changed_by) == (
            Status.DELETED,
            "admin_bulk",
            ACTOR,
        )
    for client_id in others:
        assert (await entry_of(gateway, client_id)).status is Status.PENDING
    assert sorted(e["client_id"] for e in cleanups(gateway, reason="admin_bulk")) == sorted(cursors)
    assert {e["decision"] for e in cleanups(gateway)} == {"deleted"}
    bulk = events_of(gateway, name="admin.clients.bulk_delete")
    assert [(e["status"], e["decision"]) for e in bulk] == [
        (200, "allowed"),
        (409, "denied"),
        (200, "allowed"),
    ]

    again = await admin(
        session, gateway, "POST", "delete", {"filter": {"vendor": "cursor"}, "dry_run": True}
    )
    assert again.body["count"] == 0
    unknown = await admin(
        session, gateway, "POST", "delete", {"filter": {"vendor": "unknown"}, "dry_run": True}
    )
    assert unknown.body["count"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {}, "dry_run": True},
        {"filter": {"vendor": "cursor"}},
        {"filter": {"vendor": "cursor"}, "expected_count": -1},
        {"filter": {"colour": "red"}, "dry_run": True},
        {"filter": {"status": "gone"}, "dry_run": True},
    ],
    ids=["empty-filter", "no-expected-count", "negative-count", "unknown-key", "bad-status"],
)
async def test_bulk_delete_refuses_what_it_cannot_count(upstream, gateway_factory, session, body):
    """A bulk delete with an empty or invalid filter, or without ``expected_count``, is
    400 ``admin.invalid_request`` and deletes nothing."""
    gateway = await start(gateway_factory, upstream, "memory://")
    client_id = (await registered(session, gateway, cursor()))["client_id"]
    answer = await admin(session, gateway, "POST", "delete", body)
    assert_admin_refused(answer, 400, "admin.invalid_request")
    assert client_id in upstream.client_ids()


# --------------------------------------------------------------------------- list and stats


async def test_list_filters_pages_and_stats(upstream, gateway_factory, session, storage):
    """The list filters by status (repeated), vendor, name glob, registration time and
    idleness, pages with a cursor through every match exactly once; stats count by status
    and vendor."""
    gateway = await start(
        gateway_factory,
        upstream,
        storage,
        pol=policy(approval={"required": True, "auto_approve": ["managed"]}),
    )
    bodies = [claude_code("a"), claude_code("b"), cursor(), app_client(), app_client("Other")]
    ids = [(await registered(session, gateway, body))["client_id"] for body in bodies]
    claude_a, claude_b, cursor_id, app_id, other_id = ids
    await core(gateway).registry.touch(None, claude_a, time.time())
    await age(gateway, other_id, 3 * 86400)

    async def listed(params):
        answer = await admin(session, gateway, "GET", "", params=params)
        assert answer.status == 200, answer
        return answer.body

    everything = await listed({})
    assert everything["total"] == 5 and everything["next_cursor"] is None
    assert {c["client_id"] for c in everything["clients"]} == set(ids)
    assert (await listed({"vendor": "claude-code"}))["total"] == 2
    pending = await listed([("status", "pending")])
    assert {c["client_id"] for c in pending["clients"]} == {app_id, other_id}
    both = await listed([("status", "pending"), ("status", "active")])
    assert both["total"] == 5
    named = await listed({"name": "claude code*"})
    assert {c["client_id"] for c in named["clients"]} == {claude_a, claude_b}
    old = await listed({"registered_before": str(int(time.time()) - 86400)})
    assert [c["client_id"] for c in old["clients"]] == [other_id]
    idle = await listed({"idle_for": "1d"})
    assert [c["client_id"] for c in idle["clients"]] == [other_id]
    assert (await listed({"vendor": "claude-code", "status": "pending"}))["total"] == 0
    used = next(c for c in everything["clients"] if c["client_id"] == claude_a)
    assert used["last_used_at"] is not None

    seen, cursor_value, pages = [], None, 0
    while True:
        params = {"limit": "2"} if cursor_value is None else {"limit": "2", "cursor": cursor_value}
        chunk = await listed(params)
        assert chunk["total"] == 5 and len(chunk["clients"]) <= 2
        seen += [c["client_id"] for c in chunk["clients"]]
        pages += 1
        cursor_value = chunk["next_cursor"]
        if cursor_value is None:
            break
    assert pages == 3 and sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert_admin_refused(
        await admin(session, gateway, "GET", "", params={"status": "sleeping"}),
        400,
        "admin.invalid_request",
    )

    stats = await admin(session, gateway, "GET", "stats")
    assert stats.status == 200, stats
    assert (stats.body["total"], stats.body["live"]) == (5, 5)
    assert stats.body["by_status"]["pending"] == 2 and stats.body["by_status"]["active"] == 3
    assert stats.body["by_vendor"] == {"claude-code": 2, "cursor": 1, "unknown": 2}
    assert cursor_id in {c["client_id"] for c in (await listed({"vendor": "cursor"}))["clients"]}


async def test_admin_lifecycle_run_dry_and_real(upstream, gateway_factory, session, storage):
    """``POST /-/admin/lifecycle/run?dry_run=true`` reports the expired pending client and
    deletes nothing; without ``dry_run`` it deletes it upstream, and the gateway refuses it
    at once (``client.deleted``)."""
    gateway = await start(gateway_factory, upstream, storage)
    client_id = (await registered(session, gateway))["client_id"]
    await age(gateway, client_id, 120)

    dry = await admin(
        session, gateway, "POST", "/-/admin/lifecycle/run", params={"dry_run": "true"}
    )
    assert dry.status == 200, dry
    assert dry.body["dry_run"] is True
    assert [(a["client_id"], a["result"]) for a in dry.body["actions"]] == [
        (client_id, "would_delete")
    ]
    assert client_id in upstream.client_ids()

    real = await admin(session, gateway, "POST", "/-/admin/lifecycle/run")
    assert real.status == 200, real
    assert [(a["client_id"], a["reason"], a["result"]) for a in real.body["actions"]] == [
        (client_id, "pending_expired", "deleted")
    ]
    assert client_id not in upstream.client_ids()
    assert_refused(
        await token_request(session, gateway, client_id), 401, "invalid_client", "client.deleted"
    )
    assert len(events_of(gateway, name="admin.lifecycle.run", decision="allowed")) == 2


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def capture_logs(capsys, caplog):
    """The operational log at debug level (JSON lines on stderr) and the standard
    loggers (aiohttp's access log among them)."""
    caplog.set_level(logging.DEBUG)

    def begin() -> None:
        configure_logging("debug")  # after the gateway's build() chose "warning"
        capsys.readouterr()

    def read() -> str:
        captured = capsys.readouterr()
        return captured.out + captured.err + caplog.text

    return begin, read


async def stored_text(gateway) -> str:
    """Everything the gateway's storage holds, as text."""
    storage = core(gateway).storage
    if isinstance(storage, MemoryStorage):
        return repr(vars(storage))
    client = redis.Redis.from_url(storage.uri)
    try:
        out = []
        for key in client.scan_iter():
            kind = client.type(key)
            if kind == b"hash":
                out.append(repr(client.hgetall(key)))
            elif kind == b"string":
                out.append(repr(client.get(key)))
            else:
                out.append(repr(key))
        return "\n".join(out)
    finally:
        client.close()


async def test_no_registration_access_token_is_ever_shown(
    upstream, gateway_factory, session, storage, capture_logs
):
    """Every registration access token the upstream issued (at registration and on each
    rotation) is absent from every audit event, every admin answer (list, show, stats,
    approve, reject, delete, bulk, lifecycle run), the operational and access logs and the
    storage (where only its sealed form is); no admin answer carries a sealed token
    either."""
    begin, read_logs = capture_logs
    gateway = await start(gateway_factory, upstream, storage)
    begin()
    tokens: list[str] = []
    answers: list[str] = []

    async def call_admin(*args, **kwargs):
        answer = await admin(session, gateway, *args, **kwargs)
        assert answer.status < 500 or answer.status == 502, answer
        answers.append(json.dumps(answer.body))
        return answer

    clients = [await registered(session, gateway, body) for body in (app_client(), cursor())]
    clients += [await registered(session, gateway) for _ in range(4)]
    tokens += [c["registration_access_token"] for c in clients]
    renamed = await call(
        session,
        "PUT",
        clients[0]["registration_client_uri"],
        update_of(clients[0], client_name="Renamed App"),
        bearer(clients[0]["registration_access_token"]),
    )
    assert renamed.status == 200, renamed
    tokens.append(renamed.body["registration_access_token"])
    stale = await upstream_update(session, upstream, clients[5])  # past the gateway
    tokens.append(stale.body["registration_access_token"])
    sealed = [(await entry_of(gateway, c["client_id"])).sealed_token for c in clients]
    assert all(sealed)
    ids = [c["client_id"] for c in clients]

    await call_admin("GET", "")
    await call_admin("GET", "", params=[("status", "pending"), ("status", "active")])
    await call_admin("GET", "stats")
    for client_id in ids:
        await call_admin("GET", client_id)
    await call_admin("POST", f"{ids[0]}/approve")
    await call_admin("POST", f"{ids[1]}/reject")
    await call_admin("DELETE", ids[2])
    await call_admin("POST", f"{ids[5]}/reject")  # its upstream delete fails: last_error
    await call_admin("GET", ids[5])
    dry = await call_admin("POST", "delete", {"filter": {"status": "pending"}, "dry_run": True})
    await call_admin(
        "POST",
        "delete",
        {"filter": {"status": "pending"}, "expected_count": dry.body["count"]},
    )
    await age(gateway, ids[0], 10)
    await call_admin("POST", "/-/admin/lifecycle/run", params={"dry_run": "true"})
    await call_admin("POST", "/-/admin/lifecycle/run")
    await call_admin("GET", "")
    await call_admin("GET", "stats")
    assert_refused(
        await token_request(session, gateway, ids[3]), 401, "invalid_client", "client.deleted"
    )

    logs = read_logs()
    assert "/-/admin/clients" in logs  # the capture works: aiohttp's access log
    texts = {
        "audit": gateway.audit_text(),
        "logs": logs,
        "answers": "\n".join(answers),
        "storage": await stored_text(gateway),
    }
    assert len(set(tokens)) == len(tokens) == 8
    for token in tokens:
        for where, text in texts.items():
            assert token not in text, (where, token)
    for where, text in texts.items():
        assert ADMIN_TOKEN not in text, where
    for value in sealed:
        assert value not in texts["answers"] and value not in texts["audit"]
    assert FERNET_PREFIX not in texts["answers"]
    assert FERNET_PREFIX not in texts["audit"]
    assert not re.search(r"Bearer [A-Za-z0-9_-]{20,}", texts["audit"] + texts["logs"])
