"""Replicas sharing one registry in Redis: an approval on one lifts the block on another at
once, the registry outlives a restart (and a key rotation), and no cleanup is done twice
however many replicas run the job, or an administrator deletes, at the same time.

The replicas are gateways in this test's event loop (:func:`replicas`), each with its own
audit file, and one a real ``dcr-gateway run`` process; all share one real redis-server
and one real node-oidc-provider.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.fernet import Fernet

from gateway.registry.entry import Status
from gateway.registry.jobs import run_once
from tests.support import lifecycle
from tests.support.controls import assert_refused, register
from tests.support.gateway_process import start_gateway_process
from tests.support.lifecycle import (
    ADMIN_TOKEN,
    APP_CB,
    SHARED_KEY,
    admin,
    age,
    app_client,
    authorize,
    cleanups,
    core,
    entry_of,
    policy,
    token_request,
)
from tests.support.oauth_flow import OAuthFlowError, authorization_code_flow

pytestmark = pytest.mark.integration

# The fixtures of tests.support.lifecycle these tests use by name.
flow_upstream = lifecycle.flow_upstream
replicas = lifecycle.replicas

APPROVAL = policy(approval={"required": True, "pending_ttl": "60s"})


async def registered(session, gateway, body=None):
    answer = await register(session, gateway, body or app_client())
    assert answer.status == 201, answer
    return answer.body


def deleted_events(*gateways):
    return cleanups(*gateways, result="deleted")


def upstream_deletes(proxy, since: int) -> list[str]:
    return [line for line in proxy.requests(since) if line.startswith("DELETE /reg/")]


# --------------------------------------------------------------------------- approval


async def test_approval_on_one_replica_lifts_the_block_on_another_at_once(
    flow_upstream, replicas, session, redis_storage
):
    """Registered and approved on replica B; replica A (which had refused the client just
    before) lets it complete the code flow right after the approval."""
    a = await replicas(
        flow_upstream.url, port=flow_upstream.port, policy=APPROVAL, storage=redis_storage
    )
    b = await replicas(flow_upstream.url, policy=APPROVAL, storage=redis_storage)
    client_id = (await registered(session, b))["client_id"]

    assert (await authorize(session, a, client_id)).status == 403
    with pytest.raises(OAuthFlowError, match="answered 403"):
        await authorization_code_flow(a.url, client_id, APP_CB)
    assert_refused(
        await token_request(session, a, client_id), 401, "invalid_client", "approval.pending"
    )

    approved = await admin(session, b, "POST", f"{client_id}/approve")
    assert approved.status == 200, approved
    tokens = await authorization_code_flow(a.url, client_id, APP_CB)
    assert tokens["access_token"]


async def test_approval_in_another_process_lifts_the_block_here(
    flow_upstream, replicas, session, redis_storage, tmp_path, monkeypatch
):
    """A replica that is a real ``dcr-gateway run`` process (its own config, policy and
    audit files) registers the client and approves it through its admin API; the
    in-process replica refused it before and lets it finish the code flow after."""
    monkeypatch.setenv("LIFECYCLE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("LIFECYCLE_REGISTRY_KEY", SHARED_KEY.decode("ascii"))
    process = start_gateway_process(
        tmp_path / "other",
        "other",
        upstream_url=flow_upstream.url,
        policy=APPROVAL,
        storage=redis_storage,
        extra_config=(
            "admin: {token_env: LIFECYCLE_ADMIN_TOKEN}\n"
            "registry: {key_env: LIFECYCLE_REGISTRY_KEY, job_interval: 1h}\n"
        ),
    )
    try:
        here = await replicas(
            flow_upstream.url, port=flow_upstream.port, policy=APPROVAL, storage=redis_storage
        )
        await asyncio.to_thread(process.wait_ready)
        client_id = (await registered(session, process))["client_id"]
        assert [e["client_status"] for e in process.registrations()] == ["pending"]
        with pytest.raises(OAuthFlowError, match="answered 403"):
            await authorization_code_flow(here.url, client_id, APP_CB)

        approved = await admin(session, process, "POST", f"{client_id}/approve")
        assert approved.status == 200, approved
        tokens = await authorization_code_flow(here.url, client_id, APP_CB)
        assert tokens["access_token"]
        assert (await entry_of(here, client_id)).changed_by == "LIFECYCLE_ADMIN_TOKEN"
    finally:
        await asyncio.to_thread(process.stop)


# --------------------------------------------------------------------------- restarts


async def test_the_registry_in_redis_survives_a_restart(upstream, replicas, session, redis_storage):
    """Stop the gateway, start a new one on the same Redis: the client is still known,
    still pending and still blocked; its quota unit still counts; and the token sealed
    before the restart still deletes it upstream when it expires."""
    pol = policy(
        approval={"required": True, "pending_ttl": "60s"},
        quotas={"max_clients_per_vendor": 1},
    )
    first = await replicas(upstream.url, policy=pol, storage=redis_storage)
    client_id = (await registered(session, first))["client_id"]
    before = await entry_of(first, client_id)
    await first.stop()

    second = await replicas(upstream.url, policy=pol, storage=redis_storage)
    after = await entry_of(second, client_id)
    assert after == before
    assert after.status is Status.PENDING
    assert_refused(
        await token_request(session, second, client_id), 401, "invalid_client", "approval.pending"
    )
    assert (await authorize(session, second, client_id)).status == 403
    assert_refused(
        await register(session, second, app_client()),
        403,
        "access_denied",
        "quota.max_clients_per_vendor",
    )

    report = await run_once(core(second), now=time.time() + 61)
    assert [(a["client_id"], a["result"]) for a in report.actions] == [(client_id, "deleted")]
    assert client_id not in upstream.client_ids()


async def test_a_restart_with_a_new_key_first_reseals_every_token(
    upstream, replicas, session, redis_storage
):
    """Rotation as an operator does it: restart with ``(new, old)``, let a job run re-seal,
    restart with ``new`` alone: the clients sealed under ``old`` are still deleted
    upstream when they expire."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    first = await replicas(
        upstream.url, policy=APPROVAL, storage=redis_storage, registry_keys=(old,)
    )
    ids = [(await registered(session, first))["client_id"] for _ in range(2)]
    await first.stop()

    rotating = await replicas(
        upstream.url, policy=APPROVAL, storage=redis_storage, registry_keys=(new, old)
    )
    assert (await run_once(core(rotating))).resealed == 2
    await rotating.stop()

    rotated = await replicas(
        upstream.url, policy=APPROVAL, storage=redis_storage, registry_keys=(new,)
    )
    report = await run_once(core(rotated), now=time.time() + 61)
    assert sorted((a["client_id"], a["result"]) for a in report.actions) == sorted(
        (client_id, "deleted") for client_id in ids
    )
    assert not set(ids) & set(upstream.client_ids())


# --------------------------------------------------------------------------- no double work


async def test_two_replicas_never_run_the_same_cleanup_twice(
    upstream, proxy, replicas, session, redis_storage
):
    """Two replicas run the job concurrently, over and over, on the same due set: every
    due client is deleted exactly once (one ``client.cleanup`` with result ``deleted``
    across both audit logs, one ``DELETE`` at the upstream), and none is left."""
    a = await replicas(proxy.url, policy=APPROVAL, storage=redis_storage)
    b = await replicas(proxy.url, policy=APPROVAL, storage=redis_storage)
    ids = [(await registered(session, a if i % 2 else b))["client_id"] for i in range(8)]
    mark = proxy.mark()
    now = time.time() + 61

    reports = []
    for _ in range(6):
        reports += await asyncio.gather(
            run_once(core(a), now=now),
            run_once(core(b), now=now),
            run_once(core(a), now=now),
            run_once(core(b), now=now),
        )
    assert any(r.ran for r in reports) and any(not r.ran for r in reports)
    assert all(r.error is None for r in reports)
    done = [act["client_id"] for r in reports for act in r.actions if act["result"] == "deleted"]
    assert sorted(done) == sorted(ids)
    assert sorted(e["client_id"] for e in deleted_events(a, b)) == sorted(ids)
    deletes = upstream_deletes(proxy, mark)
    assert sorted(deletes) == sorted(f"DELETE /reg/{client_id}" for client_id in ids)
    assert not set(ids) & set(upstream.client_ids())
    for client_id in ids:
        assert (await entry_of(a, client_id)).status is Status.DELETED


async def test_a_bulk_delete_racing_the_job_deletes_each_client_once(
    upstream, proxy, replicas, session, redis_storage
):
    """An administrator's bulk delete on one replica while the job runs on another, over
    the same clients: each is deleted upstream exactly once, whichever got there first."""
    a = await replicas(proxy.url, policy=APPROVAL, storage=redis_storage)
    b = await replicas(proxy.url, policy=APPROVAL, storage=redis_storage)
    ids = [(await registered(session, a))["client_id"] for _ in range(6)]
    for client_id in ids:
        await age(a, client_id, 120)  # expired for the job, in real time
    dry = await admin(
        session, b, "POST", "delete", {"filter": {"status": "pending"}, "dry_run": True}
    )
    assert dry.body["count"] == 6
    mark = proxy.mark()

    bulk, report = await asyncio.gather(
        admin(session, b, "POST", "delete", {"filter": {"status": "pending"}, "expected_count": 6}),
        run_once(core(a)),
    )
    assert bulk.status in (200, 409), bulk
    for _ in range(2):  # whatever either left (busy, changed) the next runs finish
        await run_once(core(a))
    deletes = upstream_deletes(proxy, mark)
    assert sorted(deletes) == sorted(f"DELETE /reg/{client_id}" for client_id in ids)
    assert sorted(e["client_id"] for e in deleted_events(a, b)) == sorted(ids)
    assert not set(ids) & set(upstream.client_ids())
    assert report.error is None
