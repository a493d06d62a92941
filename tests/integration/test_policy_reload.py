"""Policy reload against the real upstream: the admin API, the file watcher, SIGHUP to a
real ``dcr-gateway run``, broken files kept out, and requests in flight finishing under
the policy they started with."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.config.settings import PolicyReload
from gateway.policy.loader import load_policy
from tests.support.gateway_process import start_gateway_process

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "reload-admin-token-0123456789abcdef0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPEN = {"version": 1, "mode": "open", "client": {"scopes": {"allowed": "any"}}}
DISABLED = {"version": 1, "mode": "disabled"}
CLIENT = {
    "client_name": "Reload App",
    "redirect_uris": ["https://app.example.com/cb"],
    "token_endpoint_auth_method": "none",
}


def write(path: Path, policy: dict | str) -> None:
    """Write a policy the way deployments should: a new file renamed over the old one."""
    text = policy if isinstance(policy, str) else json.dumps(policy, indent=2)
    staging = path.with_suffix(".tmp")
    staging.write_text(text)
    staging.replace(path)


async def start(gateway_factory, upstream, tmp_path: Path, policy: dict, **settings):
    path = tmp_path / "policy.yaml"
    write(path, policy)
    gateway = await gateway_factory(
        upstream.url, policy=path, policy_file=path, admin_token=ADMIN_TOKEN, **settings
    )
    return gateway, path


async def register(url: str, body: dict | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/reg", json=body or CLIENT) as response:
            await response.read()
            return response.status


async def admin(url: str, method: str, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url + path, headers=ADMIN) as response:
            return response.status, await response.json()


def events(gateway, name: str) -> list[dict]:
    return [e for e in gateway.all_events() if e["event"] == name]


async def test_admin_reload_swaps_the_policy_and_audits_it(upstream, gateway_factory, tmp_path):
    gateway, path = await start(gateway_factory, upstream, tmp_path, DISABLED)
    [startup] = events(gateway, "policy.loaded")
    assert startup["trigger"] == "startup"
    assert startup["files"] == [str(path)]
    assert await register(gateway.url) == 403

    write(path, OPEN)
    status, answer = await admin(gateway.url, "POST", "/-/admin/policy/reload")
    assert status == 200, answer
    assert answer["changed"] is True
    assert answer["policy_revision"] != startup["policy_revision"]
    assert await register(gateway.url) == 201

    loaded = events(gateway, "policy.loaded")[-1]
    assert loaded["trigger"] == "admin" and loaded["changed"] is True
    assert loaded["previous_revision"] == startup["policy_revision"]
    assert loaded["policies"] == {"default": load_policy(path).revision}
    [call] = events(gateway, "admin.policy.reload")
    assert (call["decision"], call["rule"]) == ("allowed", "allow.admin")
    assert call["policy_revision"] == answer["policy_revision"]
    [registration] = [e for e in gateway.registrations() if e["status"] == 201]
    assert registration["policy_revision"] == load_policy(path).revision

    status, shown = await admin(gateway.url, "GET", "/-/admin/policy")
    assert status == 200
    assert shown["policy_revision"] == answer["policy_revision"]
    assert shown["reloads_ok"] == 1 and shown["reloads_failed"] == 0
    assert shown["last_error"] is None
    assert events(gateway, "admin.policy.show")[0]["decision"] == "allowed"


async def test_a_broken_policy_is_kept_out(upstream, gateway_factory, tmp_path):
    gateway, path = await start(gateway_factory, upstream, tmp_path, OPEN)
    write(path, "version: 1\nmode: open\nredirect_uris:\n  blok: []\n")
    status, answer = await admin(gateway.url, "POST", "/-/admin/policy/reload")
    assert status == 409
    assert answer["error"] == "invalid_request"
    assert f"{path.name}:4" in answer["error_description"]
    assert answer["error_description"].endswith("(rule admin.policy_invalid)")
    assert await register(gateway.url) == 201  # the old policy is in force

    [failed] = events(gateway, "policy.reload_failed")
    assert failed["trigger"] == "admin"
    assert f"{path}:4: redirect_uris.blok: unknown key" in failed["error"]
    assert failed["policy_revision"] == events(gateway, "policy.loaded")[0]["policy_revision"]
    status, shown = await admin(gateway.url, "GET", "/-/admin/policy")
    assert shown["reloads_failed"] == 1
    assert f"{path}:4" in shown["last_error"]

    # Every file is validated before anything is swapped: a missing file fails too.
    path.unlink()
    status, answer = await admin(gateway.url, "POST", "/-/admin/policy/reload")
    assert status == 409
    assert await register(gateway.url) == 201


async def test_the_watcher_reloads_changed_files_once(upstream, gateway_factory, tmp_path):
    gateway, path = await start(
        gateway_factory,
        upstream,
        tmp_path,
        DISABLED,
        policy_reload=PolicyReload(watch=True, interval=0.1),
    )
    assert await register(gateway.url) == 403
    write(path, OPEN)
    await wait_for(lambda: len(events(gateway, "policy.loaded")) == 2)
    assert events(gateway, "policy.loaded")[-1]["trigger"] == "watch"
    assert await register(gateway.url) == 201

    write(path, "version: 1\nmode: [open]\n")
    await wait_for(lambda: events(gateway, "policy.reload_failed"))
    await asyncio.sleep(0.5)  # five more polls: a broken file is reported once
    assert len(events(gateway, "policy.reload_failed")) == 1
    assert await register(gateway.url) == 201

    write(path, DISABLED)
    await wait_for(lambda: len(events(gateway, "policy.loaded")) == 3)
    assert await register(gateway.url) == 403


async def test_a_request_in_flight_finishes_under_its_own_policy(
    upstream, gateway_factory, tmp_path
):
    """The registration starts (its policy read) and stalls half way through its body;
    the policy is replaced by one that disables registration; the body completes, and the
    request is decided by the policy it started with.  The next request is not."""
    gateway, path = await start(gateway_factory, upstream, tmp_path, OPEN)
    old_revision = load_policy(path).revision
    body = json.dumps(CLIENT).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /reg HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:10]
    )
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler has read its policy and waits for the body

    write(path, DISABLED)
    status, answer = await admin(gateway.url, "POST", "/-/admin/policy/reload")
    assert (status, answer["changed"]) == (200, True)

    writer.write(body[10:])
    await writer.drain()
    head = (await reader.read()).split(b"\r\n", 1)[0]
    writer.close()
    assert head == b"HTTP/1.1 201 Created"
    assert await register(gateway.url) == 403
    first, second = gateway.registrations()
    assert (first["decision"], first["policy_revision"]) == ("allowed", old_revision)
    assert (second["decision"], second["rule"]) == ("denied", "mode.disabled")
    assert second["policy_revision"] == load_policy(path).revision


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def test_sighup_reloads_a_running_gateway(upstream, tmp_path):
    process = start_gateway_process(
        tmp_path, "hup", upstream_url=upstream.url, policy=DISABLED, storage="memory://"
    ).wait_ready()
    try:
        path = tmp_path / "hup.policy.yaml"
        write(path, OPEN)
        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while len([e for e in process.all_events() if e["event"] == "policy.loaded"]) < 2:
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.05)
        loaded = [e for e in process.all_events() if e["event"] == "policy.loaded"]
        assert [e["trigger"] for e in loaded] == ["startup", "signal"]
        assert loaded[1]["changed"] is True
        assert process.process.poll() is None  # still serving
    finally:
        assert process.stop() == 0
