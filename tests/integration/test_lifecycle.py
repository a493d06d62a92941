"""The client lifecycle end to end (issue 15): approval, pending expiry, idle cleanup,
quotas with eviction, retried deletes, management in step, key rotation.

Every test runs against the real node-oidc-provider and, where the registry's storage
matters, against both stores (``memory://`` and a real redis-server).  Time is simulated:
the lifecycle job is run with ``now=`` in the future, last uses are written with
``Registry.touch``, registration times moved back with :func:`age`.
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from cryptography.fernet import Fernet, InvalidToken

from gateway.registration import forward
from gateway.registry.entry import Status
from gateway.registry.jobs import run_once
from gateway.registry.removal import backoff
from gateway.registry.sealing import Sealer
from gateway.registry.store import count_key
from tests.support import lifecycle
from tests.support.controls import assert_refused, bearer, call, register, sha256
from tests.support.gateway import RunningGateway
from tests.support.lifecycle import (
    ADMIN_TOKEN,
    APP_CB,
    CLAUDE_CODE_CB,
    admin,
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
    upstream_read,
    upstream_update,
)
from tests.support.oauth_flow import OAuthFlowError, authorization_code_flow
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

# The fixtures of tests.support.lifecycle these tests use by name.
flow_upstream = lifecycle.flow_upstream
storage = lifecycle.storage

APPROVAL = policy(approval={"required": True, "pending_ttl": "60s"})
IDLE = policy(cleanup={"idle_after": "1h", "never_used_after": "1d"})
PARTNER_TOKEN = "lifecycle-partner-initial-access-token"


async def registered(session, gateway, body=None):
    answer = await register(session, gateway, body or app_client())
    assert answer.status == 201, answer
    return answer.body


def assert_blocked_page(page, title: str, rule: str) -> None:
    """The gateway's own refusal page: 403 HTML, never a redirect (to the redirect URI or
    anywhere else)."""
    assert page.status == 403, page
    assert "Location" not in page.headers, page.headers
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-store"
    assert f"<h1>{title}</h1>" in page.text
    assert rule in page.text
    assert APP_CB not in page.text and CLAUDE_CODE_CB not in page.text


# --------------------------------------------------------------------------- approval


async def test_pending_client_gets_no_token_until_approved(
    flow_upstream, gateway_factory, session, storage
):
    """A pending client's full code flow fails (the authorization request gets the 403
    page, no redirect; the token request 401 ``invalid_client``), each refusal audited as
    ``client.blocked``; once approved, the same client id completes the flow."""
    gateway = await gateway_factory(
        flow_upstream.url,
        port=flow_upstream.port,
        policy=policy(approval={"required": True}),
        storage=storage,
        admin_token=ADMIN_TOKEN,
    )
    client = await registered(session, gateway)
    client_id = client["client_id"]
    assert (await entry_of(gateway, client_id)).status is Status.PENDING
    assert gateway.registrations()[0]["client_status"] == "pending"

    page = await authorize(session, gateway, client_id)
    assert_blocked_page(page, "Awaiting approval", "approval.pending")
    with pytest.raises(OAuthFlowError, match="answered 403"):
        await authorization_code_flow(gateway.url, client_id, APP_CB)
    refused = await token_request(session, gateway, client_id)
    assert_refused(refused, 401, "invalid_client", "approval.pending")

    blocked = events_of(gateway, name="client.blocked", client_id=client_id)
    assert [e["endpoint"] for e in blocked] == ["authorization", "authorization", "token"]
    assert {(e["decision"], e["rule"], e["status"]) for e in blocked} == {
        ("denied", "approval.pending", 403),
        ("denied", "approval.pending", 401),
    }

    approved = await admin(session, gateway, "POST", f"{client_id}/approve")
    assert approved.status == 200, approved
    assert approved.body["status"] == "active"
    tokens = await authorization_code_flow(gateway.url, client_id, APP_CB)
    assert tokens["access_token"] and tokens["refresh_token"]
    assert await core(gateway).registry.last_used(None, client_id) is not None
    assert len(events_of(gateway, name="client.blocked")) == 3  # allowed uses write none


async def test_auto_approve_managed_and_token_clients_start_active(
    upstream, gateway_factory, session, storage
):
    """``auto_approve: [managed, token]`` lets a managed client (Cursor) and a registration
    carrying a valid initial access token start active, while an unknown client without a
    token waits: its token request is refused, the others reach the upstream."""
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(
            approval={"required": True, "auto_approve": ["managed", "token"]},
            initial_access_tokens={
                "required": False,
                "tokens": [{"name": "partner", "sha256": sha256(PARTNER_TOKEN)}],
            },
        ),
        storage=storage,
    )
    managed = await registered(session, gateway, cursor())
    unknown = await registered(session, gateway)
    answer = await register(session, gateway, app_client(), headers=bearer(PARTNER_TOKEN))
    assert answer.status == 201, answer
    partner = answer.body
    assert (await entry_of(gateway, managed["client_id"])).status is Status.ACTIVE
    assert (await entry_of(gateway, unknown["client_id"])).status is Status.PENDING
    entry = await entry_of(gateway, partner["client_id"])
    assert (entry.status, entry.initial_access_token_name) == (Status.ACTIVE, "partner")
    refused = await token_request(session, gateway, unknown["client_id"])
    assert_refused(refused, 401, "invalid_client", "approval.pending")
    for client in (managed, partner):
        passed = await token_request(session, gateway, client["client_id"])
        assert passed.status == 400 and passed.body["error"] == "invalid_grant", passed


# --------------------------------------------------------------------------- expiry


async def test_pending_client_is_deleted_upstream_after_its_ttl(
    upstream, gateway_factory, session, storage
):
    """``pending_ttl`` passed: the client is deleted upstream with its registration access
    token (its RFC 7592 read fails 401 at the upstream itself, the upstream's client count
    drops), recorded ``deleted`` / ``pending_expired`` and audited; its token requests
    then get 401 ``invalid_client`` (``client.deleted``)."""
    gateway = await gateway_factory(upstream.url, policy=APPROVAL, storage=storage)
    client = await registered(session, gateway)
    client_id = client["client_id"]
    before = await upstream.aclient_count(session)

    early = await run_once(core(gateway), now=time.time() + 30)
    assert early.ran and early.actions == []
    assert (await entry_of(gateway, client_id)).status is Status.PENDING

    report = await run_once(core(gateway), now=time.time() + 61)
    assert [(a["client_id"], a["reason"], a["result"]) for a in report.actions] == [
        (client_id, "pending_expired", "deleted")
    ]
    assert await upstream.aclient_count(session) == before - 1
    assert client_id not in upstream.client_ids()
    direct = await upstream_read(session, upstream, client_id, client["registration_access_token"])
    assert direct.status == 401, direct

    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.reason, entry.deleting) == (
        Status.DELETED,
        "pending_expired",
        False,
    )
    assert entry.sealed_token is None  # nothing left to delete with
    [event] = cleanups(gateway, client_id=client_id)
    assert (event["decision"], event["reason"], event["status_before"]) == (
        "deleted",
        "pending_expired",
        "pending",
    )
    assert event["upstream_status"] in (200, 204)
    [run] = events_of(gateway, name="lifecycle.run")
    assert run["results"] == {"pending_expired:deleted": 1}

    refused = await token_request(session, gateway, client_id)
    assert_refused(refused, 401, "invalid_client", "client.deleted")
    page = await authorize(session, gateway, client_id)
    assert_blocked_page(page, "Application no longer registered", "client.deleted")
    # Deleted clients are not expired twice.
    again = await run_once(core(gateway), now=time.time() + 7200)
    assert again.actions == []


# --------------------------------------------------------------------------- idle cleanup


async def test_idle_cleanup_deletes_only_idle_clients(upstream, gateway_factory, session, storage):
    """Of three active clients (used a minute ago, used two hours ago, never used and
    younger than ``never_used_after``) only the idle one goes, audited ``idle``; a dry run
    first deletes nothing and says ``would_delete``.  A day later the never-used one goes
    as ``never_used``, each audited on its own."""
    gateway = await gateway_factory(upstream.url, policy=IDLE, storage=storage)
    registry = core(gateway).registry
    recent, idle, unused = [(await registered(session, gateway))["client_id"] for _ in range(3)]
    now = time.time() + 2 * 3600
    await registry.touch(None, recent, now - 60)
    await registry.touch(None, idle, now - 2 * 3600)
    upstream_before = set(upstream.client_ids())

    dry = await run_once(core(gateway), dry_run=True, now=now)
    assert dry.dry_run
    assert [(a["client_id"], a["reason"], a["result"]) for a in dry.actions] == [
        (idle, "idle", "would_delete")
    ]
    assert {recent, idle, unused} <= set(upstream.client_ids())
    for client_id in (recent, idle, unused):
        assert (await entry_of(gateway, client_id)).status is Status.ACTIVE
    assert cleanups(gateway) == []
    [dry_event] = events_of(gateway, name="lifecycle.run")
    assert (dry_event["decision"], dry_event["results"]) == (
        "would_delete",
        {"idle:would_delete": 1},
    )

    report = await run_once(core(gateway), now=now)
    assert [(a["client_id"], a["reason"], a["result"]) for a in report.actions] == [
        (idle, "idle", "deleted")
    ]
    assert set(upstream.client_ids()) == upstream_before - {idle}
    assert (await entry_of(gateway, idle)).status is Status.DELETED
    assert (await entry_of(gateway, recent)).status is Status.ACTIVE
    assert (await entry_of(gateway, unused)).status is Status.ACTIVE
    assert [(e["client_id"], e["reason"], e["decision"]) for e in cleanups(gateway)] == [
        (idle, "idle", "deleted")
    ]

    later = await run_once(core(gateway), now=now + 86400)
    assert {(a["client_id"], a["reason"], a["result"]) for a in later.actions} == {
        (unused, "never_used", "deleted"),
        (recent, "idle", "deleted"),
    }
    assert {(e["client_id"], e["reason"]) for e in cleanups(gateway)} == {
        (idle, "idle"),
        (unused, "never_used"),
        (recent, "idle"),
    }
    assert not {recent, idle, unused} & set(upstream.client_ids())


async def test_registry_dry_run_setting_deletes_nothing(
    upstream, gateway_factory, session, storage
):
    """With ``registry.dry_run`` the job (run as configured) only reports: an idle and an
    expired pending client are ``would_delete``, both stay, upstream and in the registry."""
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(
            approval={"required": True, "pending_ttl": "60s"}, cleanup={"idle_after": "1h"}
        ),
        storage=storage,
        dry_run=True,
    )
    pending = (await registered(session, gateway))["client_id"]
    report = await run_once(core(gateway), now=time.time() + 7200)
    assert report.dry_run
    assert [(a["client_id"], a["result"]) for a in report.actions] == [(pending, "would_delete")]
    assert pending in upstream.client_ids()
    assert (await entry_of(gateway, pending)).status is Status.PENDING
    assert cleanups(gateway) == []
    [run] = events_of(gateway, name="lifecycle.run")
    assert (run["decision"], run["dry_run"]) == ("would_delete", True)


# --------------------------------------------------------------------------- re-registering


async def test_deleted_client_gets_invalid_client_then_registers_again_and_works(
    flow_upstream, gateway_factory, session, storage
):
    """What Claude does: its client was cleaned up as idle, so its refresh gets 401
    ``invalid_client``; it registers again, gets a new client id, and completes the code
    flow."""
    gateway = await gateway_factory(
        flow_upstream.url, port=flow_upstream.port, policy=IDLE, storage=storage
    )
    first = await registered(session, gateway, claude_code())
    tokens = await authorization_code_flow(gateway.url, first["client_id"], CLAUDE_CODE_CB)

    report = await run_once(core(gateway), now=time.time() + 2 * 3600)
    assert [(a["client_id"], a["reason"], a["result"]) for a in report.actions] == [
        (first["client_id"], "idle", "deleted")
    ]
    assert first["client_id"] not in flow_upstream.server.client_ids()
    refresh = await call(
        session,
        "POST",
        gateway.url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": first["client_id"],
        },
    )
    assert refresh.status == 401, refresh
    assert refresh.body["error"] == "invalid_client"
    assert "access_token" not in refresh.body

    second = await registered(session, gateway, claude_code())
    assert second["client_id"] != first["client_id"]
    again = await authorization_code_flow(gateway.url, second["client_id"], CLAUDE_CODE_CB)
    assert again["access_token"]
    assert (await entry_of(gateway, second["client_id"])).status is Status.ACTIVE


async def test_the_replica_that_cleaned_up_a_client_refuses_it_at_once(
    upstream, gateway_factory, session, storage
):
    """A client this gateway saw in use (so it believes it active) and then deleted as
    idle in its own lifecycle run is refused by the gateway itself on its next token
    request (``client.deleted``, audited ``client.blocked``), not passed to the upstream."""
    gateway = await gateway_factory(upstream.url, policy=IDLE, storage=storage)
    client_id = (await registered(session, gateway))["client_id"]
    used = await token_request(session, gateway, client_id)
    assert used.body["error"] == "invalid_grant"  # reached the upstream: it is active

    report = await run_once(core(gateway), now=time.time() + 2 * 3600)
    assert [a["result"] for a in report.actions] == ["deleted"]
    refused = await token_request(session, gateway, client_id)
    assert_refused(refused, 401, "invalid_client", "client.deleted")
    [blocked] = events_of(gateway, name="client.blocked", client_id=client_id)
    assert blocked["rule"] == "client.deleted"


# --------------------------------------------------------------------------- quotas


async def at_quota_with_stale_clients(
    upstream, gateway_factory, session, storage, tag: str
) -> tuple[RunningGateway, list[str]]:
    """A gateway whose Claude Code quota (3, ``evict_idle`` after 60 s) is full of three
    stale clients, stalest first (``<tag>0``)."""
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(
            quotas={
                "max_clients_per_vendor": 3,
                "on_full": "evict_idle",
                "evict_idle_after": "60s",
            }
        ),
        storage=storage,
    )
    registry = core(gateway).registry
    stale = []
    for index in range(3):
        client_id = (await registered(session, gateway, claude_code(f"{tag}{index}")))["client_id"]
        await registry.touch(None, client_id, time.time() - 3600 + index)
        stale.append(client_id)
    return gateway, stale


async def test_evict_idle_keeps_a_re_registering_vendor_at_its_quota(
    upstream, gateway_factory, session, storage
):
    """``max_clients_per_vendor: 3`` with ``evict_idle``: six registrations of Claude Code
    leave three live clients; each of the three stale ones was deleted upstream, the
    stalest first, audited ``evicted``.  A seventh, when all three are fresh, is refused;
    another vendor has its own quota."""
    gateway, stale = await at_quota_with_stale_clients(
        upstream, gateway_factory, session, storage, "s"
    )
    registry = core(gateway).registry

    fresh = []
    for index in range(3, 6):
        answer = await register(session, gateway, claude_code(f"s{index}"))
        assert answer.status == 201, answer
        fresh.append(answer.body["client_id"])
        evicted = stale[index - 3]
        assert gateway.registrations()[-1]["evicted"] == [evicted]
        entry = await entry_of(gateway, evicted)
        assert (entry.status, entry.reason) == (Status.DELETED, "evicted")
        assert evicted not in upstream.client_ids()

    live = [e.client_id for e in await registry.entries() if e.live and e.vendor == "claude-code"]
    assert sorted(live) == sorted(fresh)
    assert await registry.storage.counter_get(count_key(None, "managed:claude-code")) == 3
    assert [(e["client_id"], e["reason"], e["decision"]) for e in cleanups(gateway)] == [
        (client_id, "evicted", "deleted") for client_id in stale
    ]

    before = await upstream.aclient_count(session)
    refused = await register(session, gateway, claude_code("s6"))
    assert_refused(refused, 403, "access_denied", "quota.max_clients_per_vendor")
    assert "idle long enough" in refused.body["error_description"]
    assert await upstream.aclient_count(session) == before
    assert set(fresh) <= set(upstream.client_ids())
    other = await register(session, gateway, cursor())
    assert other.status == 201, other


async def test_concurrent_registrations_at_the_quota_each_evict_their_own_victim(
    upstream, gateway_factory, session, storage
):
    """Two Claude Code registrations at once, the vendor at its quota of three stale
    clients: both succeed, each evicting a different stale client (one busy with the other
    request's eviction is passed over, not retried until the request gives up)."""
    gateway, stale = await at_quota_with_stale_clients(
        upstream, gateway_factory, session, storage, "c"
    )
    registry = core(gateway).registry

    answers = await asyncio.gather(
        register(session, gateway, claude_code("n1")), register(session, gateway, claude_code("n2"))
    )
    assert [a.status for a in answers] == [201, 201], answers
    evicted = [e["client_id"] for e in cleanups(gateway, decision="deleted")]
    assert len(evicted) == len(set(evicted)) == 2 and set(evicted) <= set(stale)
    live = [e for e in await registry.entries() if e.live]
    assert len(live) == 3


async def test_quota_reject_refuses_the_fourth_until_one_is_gone(
    upstream, gateway_factory, session, storage
):
    """``on_full: reject``: the fourth client of a vendor gets 403 ``access_denied``
    (``quota.max_clients_per_vendor``) and nothing is created upstream; once the job has
    expired the pending ones, the vendor registers again."""
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(
            approval={"required": True, "pending_ttl": "60s"},
            quotas={"max_clients_per_vendor": 3, "on_full": "reject"},
        ),
        storage=storage,
    )
    for index in range(3):
        await registered(session, gateway, claude_code(f"r{index}"))
    before = await upstream.aclient_count(session)
    refused = await register(session, gateway, claude_code("r3"))
    assert_refused(refused, 403, "access_denied", "quota.max_clients_per_vendor")
    assert await upstream.aclient_count(session) == before
    event = gateway.registrations()[-1]
    assert (event["decision"], event["rule"]) == ("denied", "quota.max_clients_per_vendor")

    report = await run_once(core(gateway), now=time.time() + 61)
    assert [a["result"] for a in report.actions] == ["deleted"] * 3
    again = await register(session, gateway, claude_code("r4"))
    assert again.status == 201, again


async def test_a_registration_the_upstream_refuses_gives_its_quota_unit_back(
    upstream, gateway_factory, session, storage
):
    """The unit a registration reserved is returned when the upstream does not create the
    client (here: a scope it does not offer), so a quota of one still admits the next."""
    gateway = await gateway_factory(
        upstream.url, policy=policy(quotas={"max_clients_per_vendor": 1}), storage=storage
    )
    for _ in range(2):
        doomed = await register(session, gateway, app_client(scope="openid not-offered:scope"))
        assert doomed.status == 400, doomed
        assert gateway.registrations()[-1]["upstream_status"] == 400
    created = await register(session, gateway, app_client())
    assert created.status == 201, created


async def test_a_client_the_upstream_created_keeps_its_quota_unit_when_relaying_fails(
    upstream, gateway_factory, session, storage, monkeypatch
):
    """The upstream created the client but the gateway failed afterwards (a bug while
    relaying the answer): the answer is the JSON 502 ``internal.error``, and the unit the
    registration took stays taken, so a quota of one refuses the next registration."""
    gateway = await gateway_factory(
        upstream.url, policy=policy(quotas={"max_clients_per_vendor": 1}), storage=storage
    )

    def broken(document, gateway):
        raise RuntimeError("a bug while relaying")

    before = await upstream.aclient_count(session)
    with monkeypatch.context() as patch:
        patch.setattr(forward, "publish_client_uri", broken)
        failed = await register(session, gateway, claude_code("f1"))
    assert_refused(failed, 502, "temporarily_unavailable", "internal.error")
    assert await upstream.aclient_count(session) == before + 1
    event = gateway.registrations()[-1]
    assert (event["upstream_status"], event["decision"]) == (201, "error")
    refused = await register(session, gateway, claude_code("f2"))
    assert_refused(refused, 403, "access_denied", "quota.max_clients_per_vendor")


async def test_total_quota_counts_every_vendor(upstream, gateway_factory, session, storage):
    """``max_clients: 2`` caps the tenant whatever the vendor: the third registration, of
    a vendor with no client yet, gets ``quota.max_clients``."""
    gateway = await gateway_factory(
        upstream.url, policy=policy(quotas={"max_clients": 2}), storage=storage
    )
    await registered(session, gateway, claude_code())
    await registered(session, gateway, app_client())
    refused = await register(session, gateway, cursor())
    assert_refused(refused, 403, "access_denied", "quota.max_clients")


async def test_a_client_approved_while_the_job_runs_is_not_expired(
    upstream, gateway_factory, session, storage, monkeypatch
):
    """The job read the registry when the client was still pending past its TTL; an
    administrator approves it before the job reaches it.  The approval must win: the job
    does not delete the now active client (upstream or in the registry)."""
    gateway = await gateway_factory(
        upstream.url, policy=APPROVAL, storage=storage, admin_token=ADMIN_TOKEN
    )
    client_id = (await registered(session, gateway))["client_id"]
    registry = core(gateway).registry
    snapshot = registry.entries

    async def snapshot_then_approve():
        found = await snapshot()
        monkeypatch.setattr(registry, "entries", snapshot)  # only the job's first read
        approved = await admin(session, gateway, "POST", f"{client_id}/approve")
        assert approved.status == 200, approved
        return found

    monkeypatch.setattr(registry, "entries", snapshot_then_approve)
    report = await run_once(core(gateway), now=time.time() + 61)
    assert [a["result"] for a in report.actions if a["result"] == "deleted"] == []
    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.reason) == (Status.ACTIVE, "approved")
    assert client_id in upstream.client_ids()


# --------------------------------------------------------------------------- failed deletes


async def test_failed_upstream_delete_is_retried_with_backoff_never_marked_deleted(
    upstream, gateway_factory, session, storage
):
    """The stored registration access token is stale (the client updated itself straight
    at the upstream, past the gateway, which rotates it): the upstream refuses the delete,
    the client stays pending (still blocked), flagged ``deleting`` with the error and a
    retry time; a run before the backoff does nothing, one after it retries (and backs off
    longer); once the token is good again the retry deletes it."""
    gateway = await gateway_factory(upstream.url, policy=APPROVAL, storage=storage)
    client = await registered(session, gateway)
    client_id = client["client_id"]
    rotated = await upstream_update(session, upstream, client)
    assert rotated.status == 200, rotated
    newest = rotated.body["registration_access_token"]

    start = time.time() + 61
    report = await run_once(core(gateway), now=start)
    assert [(a["reason"], a["result"]) for a in report.actions] == [("pending_expired", "failed")]
    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.deleting, entry.delete_attempts) == (Status.PENDING, True, 1)
    assert entry.next_attempt_at == pytest.approx(start + backoff(1))
    assert "401" in entry.last_error
    assert client_id in upstream.client_ids()
    [event] = cleanups(gateway)
    assert (event["decision"], event["result"], event["upstream_status"]) == (
        "error",
        "failed",
        401,
    )
    assert_refused(
        await token_request(session, gateway, client_id), 401, "invalid_client", "approval.pending"
    )

    assert (await run_once(core(gateway), now=start + 30)).actions == []
    assert (await entry_of(gateway, client_id)).delete_attempts == 1

    second = await run_once(core(gateway), now=start + 61)
    assert [a["result"] for a in second.actions] == ["failed"]
    entry = await entry_of(gateway, client_id)
    assert entry.delete_attempts == 2
    assert entry.next_attempt_at == pytest.approx(start + 61 + backoff(2))
    assert backoff(2) > backoff(1)

    # The newest token (as an RFC 7592 answer through the gateway would have recorded it).
    registry, sealer = core(gateway).registry, core(gateway).sealer
    assert await registry.replace(entry, entry.with_(sealed_token=sealer.seal(newest)))
    final = await run_once(core(gateway), now=start + 61 + backoff(2))
    assert [(a["reason"], a["result"]) for a in final.actions] == [("pending_expired", "deleted")]
    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.deleting, entry.last_error) == (Status.DELETED, False, None)
    assert client_id not in upstream.client_ids()


async def assert_delete_reported_failed(upstream, gateway, client_id: str, expected: str) -> None:
    """The job's delete of the (expired) client failed with ``expected`` in its error, and
    nothing pretends otherwise: status kept, flagged, still upstream, audited as an error."""
    report = await run_once(core(gateway), now=time.time() + 61)
    [action] = report.actions
    assert action["result"] == "failed" and expected in action["error"], action
    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.deleting, entry.delete_attempts) == (Status.PENDING, True, 1)
    assert expected in entry.last_error
    assert client_id in upstream.client_ids()
    [event] = cleanups(gateway)
    assert event["decision"] == "error" and expected in event["error"]


async def test_without_a_sealing_key_deletes_are_reported_not_faked(
    upstream, gateway_factory, session, redis_storage
):
    """No ``registry.key_env`` on Redis: no registration access token is kept, so the
    expired client cannot be deleted upstream; that is reported, never faked."""
    gateway = await gateway_factory(
        upstream.url, policy=APPROVAL, storage=redis_storage, registry_keys=()
    )
    assert not core(gateway).sealer.enabled
    client_id = (await registered(session, gateway))["client_id"]
    assert (await entry_of(gateway, client_id)).sealed_token is None
    await assert_delete_reported_failed(
        upstream, gateway, client_id, "no registration access token is kept"
    )


async def test_without_a_sealing_key_memory_storage_seals_with_a_process_key(
    upstream, gateway_factory, session
):
    """No ``registry.key_env`` with ``memory://``: the sealed tokens die with the process
    anyway, so it seals with a key of its own, and expiry still deletes upstream."""
    gateway = await gateway_factory(upstream.url, policy=APPROVAL, registry_keys=())
    client = await registered(session, gateway)
    entry = await entry_of(gateway, client["client_id"])
    assert entry.sealed_token is not None
    assert client["registration_access_token"] not in entry.sealed_token
    report = await run_once(core(gateway), now=time.time() + 61)
    assert [a["result"] for a in report.actions] == ["deleted"]
    assert client["client_id"] not in upstream.client_ids()


async def test_a_corrupted_sealed_token_is_reported_not_faked(
    upstream, gateway_factory, session, storage
):
    """A sealed token no configured key opens (here: damaged) cannot be used: the delete
    is reported failed with a clear error and the client is kept."""
    gateway = await gateway_factory(upstream.url, policy=APPROVAL, storage=storage)
    client_id = (await registered(session, gateway))["client_id"]
    entry = await entry_of(gateway, client_id)
    broken = entry.sealed_token[:-8] + "AAAAAAAA"
    assert await core(gateway).registry.replace(entry, entry.with_(sealed_token=broken))
    await assert_delete_reported_failed(
        upstream, gateway, client_id, "cannot be read with the configured keys"
    )


# --------------------------------------------------------------------------- management


async def test_management_through_the_gateway_keeps_the_registry_in_step(
    upstream, gateway_factory, session, storage
):
    """An RFC 7592 update through the gateway that renames the client renames its entry
    and keeps the rotated registration access token (so the gateway can still delete it);
    the client's own delete through the gateway marks it deleted and frees its quota
    unit."""
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(quotas={"max_clients_per_vendor": 1}),
        storage=storage,
    )
    client = await registered(session, gateway)
    client_id, uri = client["client_id"], client["registration_client_uri"]
    assert uri == f"{gateway.url}/reg/{client_id}"
    body = update_of(client, client_name="Lifecycle Test App Renamed")
    updated = await call(
        session, "PUT", uri, body, headers=bearer(client["registration_access_token"])
    )
    assert updated.status == 200, updated
    entry = await entry_of(gateway, client_id)
    assert entry.client_name == "Lifecycle Test App Renamed"
    newest = updated.body["registration_access_token"]
    assert newest != client["registration_access_token"]
    assert core(gateway).sealer.unseal(entry.sealed_token) == newest

    deleted = await call(session, "DELETE", uri, headers=bearer(newest))
    assert deleted.status == 204, deleted
    entry = await entry_of(gateway, client_id)
    assert (entry.status, entry.reason, entry.sealed_token) == (
        Status.DELETED,
        "deleted_by_client",
        None,
    )
    assert_refused(
        await token_request(session, gateway, client_id), 401, "invalid_client", "client.deleted"
    )
    # The quota (one per vendor) counted it once and let it go once.
    again = await register(session, gateway, app_client())
    assert again.status == 201, again
    assert_refused(
        await register(session, gateway, app_client()),
        403,
        "access_denied",
        "quota.max_clients_per_vendor",
    )


# --------------------------------------------------------------------------- key rotation


async def test_key_rotation_reseals_and_a_dropped_key_is_reported(
    upstream, gateway_factory, session, storage
):
    """With keys ``(new, old)`` the job re-seals every token sealed with ``old`` (a dry run
    does not); afterwards ``new`` alone opens them and deletes work with it.  A token sealed
    with a key no longer configured is not re-sealed, and its delete is reported failed
    with a clear error."""
    old, new, gone = Fernet.generate_key(), Fernet.generate_key(), Fernet.generate_key()
    gateway = await gateway_factory(
        upstream.url, policy=APPROVAL, storage=storage, registry_keys=(old,)
    )
    gw = core(gateway)
    first = (await registered(session, gateway))["client_id"]
    second = (await registered(session, gateway))["client_id"]
    gw.sealer = Sealer((gone,))  # a deployment whose key was then dropped
    lost = (await registered(session, gateway))["client_id"]

    gw.sealer = Sealer((new, old))  # the rotation: the new key first, the old one kept
    dry = await run_once(gw, dry_run=True)
    assert dry.resealed == 0
    assert Fernet(old).decrypt((await entry_of(gateway, first)).sealed_token.encode())
    report = await run_once(gw)
    assert report.actions == [] and report.resealed == 2
    for client_id in (first, second):
        sealed = (await entry_of(gateway, client_id)).sealed_token.encode()
        assert Fernet(new).decrypt(sealed)
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(sealed)
    assert (await run_once(gw)).resealed == 0

    gw.sealer = Sealer((new,))  # the old key retired
    expiry = await run_once(gw, now=time.time() + 61)
    results = {a["client_id"]: (a["result"], a["error"]) for a in expiry.actions}
    assert results[first] == ("deleted", None) and results[second] == ("deleted", None)
    assert results[lost][0] == "failed"
    assert "cannot be read with the configured keys" in results[lost][1]
    assert not {first, second} & set(upstream.client_ids())
    assert lost in upstream.client_ids()
    entry = await entry_of(gateway, lost)
    assert (entry.status, entry.deleting) == (Status.PENDING, True)


async def test_a_registry_outage_never_lets_a_pending_client_through(
    upstream, gateway_factory, session, tmp_path
):
    """``approval.required`` with ``on_storage_error: fail_closed`` (the default): while
    the registry's Redis is down, a pending client's authorization and token requests are
    refused 503, never passed to the upstream."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        gateway = await gateway_factory(
            upstream.url, policy=policy(approval={"required": True}), storage=server.url
        )
        client_id = (await registered(session, gateway))["client_id"]
        assert_refused(
            await token_request(session, gateway, client_id),
            401,
            "invalid_client",
            "approval.pending",
        )
        server.stop()
        refused = await token_request(session, gateway, client_id)
        assert_refused(refused, 503, "temporarily_unavailable", "storage.unavailable")
        page = await authorize(session, gateway, client_id)
        assert page.status == 503 and "Location" not in page.headers, page
    finally:
        server.stop()


# --------------------------------------------------------------------------- the gate


async def test_many_client_ids_do_not_smuggle_a_pending_client_past_the_gate(
    upstream, gateway_factory, session, storage
):
    """A pending confidential client authenticating with HTTP Basic gets no token, however
    many other ``client_id`` values the request also carries (here eight distinct ones in
    the query, which node-oidc-provider ignores on a token POST)."""
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    gateway = await gateway_factory(
        upstream.url,
        policy=policy(
            approval={"required": True},
            client={"scopes": {"allowed": "any"}, "grant_types": grants},
        ),
        storage=storage,
    )
    client = await registered(
        session,
        gateway,
        app_client(
            token_endpoint_auth_method="client_secret_basic",
            grant_types=["client_credentials"],
            response_types=[],
            scope="openid",
        ),
    )
    pair = f"{client['client_id']}:{client['client_secret']}".encode()
    basic = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    form = {"grant_type": "client_credentials"}
    plain = await call(session, "POST", gateway.url + "/token", headers=basic, data=form)
    assert_refused(plain, 401, "invalid_client", "approval.pending")
    junk = "&".join(f"client_id=unknown-{i}" for i in range(8))
    smuggled = await call(session, "POST", f"{gateway.url}/token?{junk}", headers=basic, data=form)
    assert smuggled.status != 200, smuggled
    assert "access_token" not in (smuggled.body or {})
