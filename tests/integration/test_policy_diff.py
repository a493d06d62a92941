"""``dcr-gateway diff`` against an audit log a real gateway wrote: registrations and an
RFC 7592 update decided by the policy in force, replayed through a candidate."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from gateway.cli import main

pytestmark = pytest.mark.integration

APP = "https://app.example.com/cb"
OTHER = "https://other.example.com/cb"
CURRENT = {"version": 1, "redirect_uris": {"managed_list": "none", "allow": [APP, OTHER]}}
CANDIDATE = {"version": 1, "redirect_uris": {"managed_list": "none", "allow": [APP]}}
CLIENT = {"client_name": "Diff App", "token_endpoint_auth_method": "none"}


async def record_traffic(gateway) -> None:
    async with aiohttp.ClientSession() as session:
        for uri in (APP, OTHER, "https://third.example.com/cb"):
            async with session.post(
                gateway.url + "/reg", json={**CLIENT, "redirect_uris": [uri]}
            ) as answer:
                client = await answer.json()
        bad = {"Content-Type": "application/json"}
        async with session.post(gateway.url + "/reg", data=b"{bad json", headers=bad) as answer:
            assert answer.status == 400
        async with session.post(gateway.url + "/reg", json={**CLIENT, "redirect_uris": [APP]}) as a:
            client = await a.json()
        update = {
            "client_id": client["client_id"],
            **CLIENT,
            "client_name": "Diff App v2",
            "redirect_uris": [OTHER],
        }
        bearer = {"Authorization": f"Bearer {client['registration_access_token']}"}
        async with session.put(client["registration_client_uri"], json=update, headers=bearer) as a:
            assert a.status == 200, await a.text()


def config(tmp_path: Path, upstream_url: str) -> Path:
    policy = tmp_path / "current.yaml"
    policy.write_text(json.dumps(CURRENT))
    path = tmp_path / "config.yaml"
    path.write_text(f"upstream: {{url: '{upstream_url}'}}\npolicy_file: current.yaml\n")
    return path


async def test_diff_names_every_decision_the_candidate_changes(
    upstream, gateway_factory, tmp_path, capsys
):
    gateway = await gateway_factory(upstream.url, policy=CURRENT)
    await record_traffic(gateway)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(json.dumps(CANDIDATE))
    argv = ["diff", "-c", str(config(tmp_path, upstream.url)), str(candidate)]
    argv += ["--against", str(gateway.audit_path)]

    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    changed = [line for line in lines if line.startswith("allow->deny")]
    assert len(changed) == 2, out
    assert "registration" in changed[0] and "'Diff App'" in changed[0]
    assert "allowed (allow.custom) -> denied (redirect_uri.not_allowed)" in changed[0]
    assert "client.updated" in changed[1] and "'Diff App v2'" in changed[1]
    assert (
        "replayed 5 decisions against " in out
        and "2 would change (2 allow->deny, 0 deny->allow, 0 rule changed), 3 unchanged" in out
    )
    assert "skipped 1: no recorded policy decision" in out  # the malformed body
    assert "note: rate limits, quotas" in out

    assert main([*argv, "--fail-on-change"]) == 1
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == {"allow->deny": 2, "deny->allow": 0, "rule changed": 0}
    assert [c["event"] for c in report["changes"]] == ["registration", "client.updated"]
    assert report["changes"][0]["before"] == {"decision": "allowed", "rule": "allow.custom"}

    # The policy in force, as a candidate, changes nothing.
    current = tmp_path / "current.yaml"
    assert main([*argv[:3], str(current), *argv[4:], "--fail-on-change"]) == 0


def test_diff_refuses_a_candidate_that_does_not_load(tmp_path, capsys):
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("version: 1\nmode: sometimes\n")
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    argv = ["diff", "-c", str(config(tmp_path, "http://127.0.0.1:1")), str(candidate)]
    assert main([*argv, "--against", str(log)]) == 2
    assert "candidate.yaml:2: mode: must be one of" in capsys.readouterr().err
    assert main([*argv[:3], str(tmp_path / "current.yaml"), "--against", "missing.jsonl"]) == 2
