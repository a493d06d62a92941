"""The policy reloader (gateway.reload): load every file again, swap once, keep the old on
any error, audit and count each attempt; the combined revision; file stamps.

A fake gateway stands in for the application (the reloader only needs ``policies``,
``audit`` and the settings); the integration tests run it inside a real gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from gateway.config.load import load_policies
from gateway.config.settings import Listen, Settings, Upstream
from gateway.config.yamlsource import ConfigError
from gateway.policy.policies import Policies
from gateway.reload.reloader import FAILED_EVENT, LOADED_EVENT, PolicyReloader, stamp
from gateway.reload.status import PolicyStatus

TOKEN = hashlib.sha256(b"partner-token").hexdigest()


@dataclass
class FakeAudit:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        self.events.append((event, fields))


@dataclass
class FakeGateway:
    policies: Policies
    audit: FakeAudit = field(default_factory=FakeAudit)


def settings(policy: Path, tenants: dict[str, Path] | None = None) -> Settings:
    return Settings(
        listen=Listen(),
        public_url=URL("http://127.0.0.1:8080"),
        upstream=Upstream(url=URL("http://127.0.0.1:3000"), profile="keycloak"),
        policy_file=policy,
        tenants=tuple((tenants or {}).items()),
    )


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "default": write(tmp_path / "default.yaml", {"version": 1, "mode": "allowlist"}),
        "customers": write(tmp_path / "customers.yaml", {"version": 1, "mode": "open"}),
        "token": write(tmp_path / "partner.yaml", {"version": 1, "mode": "open"}),
    }


def setup(files: dict[str, Path]) -> tuple[PolicyReloader, FakeGateway]:
    config = settings(files["default"], {"customers": files["customers"]})
    policies = load_policies(config)
    return PolicyReloader(config, policies), FakeGateway(policies)


def reload(reloader: PolicyReloader, gateway: FakeGateway, trigger: str = "admin") -> Any:
    return asyncio.run(reloader.reload(gateway, trigger))  # type: ignore[arg-type]


def test_load_policies_reads_every_file_the_settings_name(files: dict[str, Path]) -> None:
    policies = load_policies(settings(files["default"], {"customers": files["customers"]}))
    assert policies.default.source == str(files["default"])
    assert policies.tenants["customers"].source == str(files["customers"])


def test_load_policies_reports_problems_at_their_file_and_line(files: dict[str, Path]) -> None:
    write(files["customers"], "version: 1\nmode: sometimes\n")
    with pytest.raises(ConfigError) as caught:
        load_policies(settings(files["default"], {"customers": files["customers"]}))
    assert [str(p) for p in caught.value.problems] == [
        f"{files['customers']}:2: mode: must be one of open, allowlist, disabled; got 'sometimes'"
    ]


def test_the_revision_covers_every_policy_and_not_the_paths(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """Replicas mounting the same files elsewhere agree; any file's change shows."""
    first = load_policies(settings(files["default"], {"customers": files["customers"]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copies = {name: elsewhere / path.name for name, path in files.items()}
    for name, path in files.items():
        copies[name].write_bytes(path.read_bytes())
    second = load_policies(settings(copies["default"], {"customers": copies["customers"]}))
    assert first.revision == second.revision
    write(copies["customers"], {"version": 1, "mode": "disabled"})
    third = load_policies(settings(copies["default"], {"customers": copies["customers"]}))
    assert third.revision != first.revision
    assert third.default.revision == first.default.revision


def test_token_policies_are_part_of_the_revision_and_the_files(files: dict[str, Path]) -> None:
    tokens = {"tokens": [{"name": "partner", "sha256": TOKEN, "policy": "partner.yaml"}]}
    write(files["default"], {"version": 1, "initial_access_tokens": tokens})
    reloader, gateway = setup(files)
    roles = [role for role, _ in gateway.policies.roles()]
    assert roles == ["default", "default/token:partner", "tenant:customers"]
    assert str(files["token"]) in reloader.status.files
    before = gateway.policies.revision
    write(files["token"], {"version": 1, "mode": "disabled"})
    outcome = reload(reloader, gateway)
    assert outcome.ok and outcome.changed and gateway.policies.revision != before


def test_a_successful_reload_swaps_and_audits(files: dict[str, Path]) -> None:
    reloader, gateway = setup(files)
    old = gateway.policies
    seen: list[bool] = []
    reloader.status.listeners.append(seen.append)
    write(files["customers"], {"version": 1, "mode": "disabled"})
    outcome = reload(reloader, gateway)
    assert outcome.ok and outcome.changed
    assert gateway.policies is not old
    assert gateway.policies.tenants["customers"].mode.value == "disabled"
    assert old.tenants["customers"].mode.value == "open"  # the old object is untouched
    [(event, fields)] = gateway.audit.events
    assert event == LOADED_EVENT
    assert fields["trigger"] == "admin" and fields["changed"] is True
    assert fields["previous_revision"] == old.revision
    assert fields["policy_revision"] == gateway.policies.revision
    assert fields["files"] == [str(files["default"]), str(files["customers"])]
    assert set(fields["policies"]) == {"default", "tenant:customers"}
    assert (reloader.status.reloads_ok, reloader.status.revision) == (1, outcome.revision)
    assert seen == [True]


def test_a_failing_listener_does_not_undo_or_hide_a_reload(files: dict[str, Path]) -> None:
    """The policies are already swapped when listeners (metrics) hear of it: one that
    raises is logged, the others still hear, and the reload still reports and audits."""
    reloader, gateway = setup(files)
    seen: list[bool] = []

    def broken(ok: bool) -> None:
        raise RuntimeError("metrics down")

    reloader.status.listeners.extend([broken, seen.append])
    write(files["customers"], {"version": 1, "mode": "disabled"})
    outcome = reload(reloader, gateway)
    assert outcome.ok and seen == [True]
    assert [event for event, _ in gateway.audit.events] == [LOADED_EVENT]


def test_unchanged_files_keep_the_same_objects(files: dict[str, Path]) -> None:
    reloader, gateway = setup(files)
    old = gateway.policies
    outcome = reload(reloader, gateway, "signal")
    assert outcome.ok and not outcome.changed
    assert gateway.policies is old
    assert gateway.audit.events[0][1]["changed"] is False


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("customers", "version: 1\nclient:\n  scopes: {alowed: []}\n", ":3: client.scopes.alowed"),
        ("default", "version: 1\nmode: open\nmode: disabled\n", ":3: mode: duplicate key"),
        ("default", "version: [1\n", ":2:1: (file): not valid YAML"),
    ],
    ids=["unknown-key", "duplicate-key", "yaml-syntax"],
)
def test_a_failed_reload_keeps_every_old_policy(
    files: dict[str, Path], name: str, text: str, expected: str
) -> None:
    reloader, gateway = setup(files)
    old = gateway.policies
    seen: list[bool] = []
    reloader.status.listeners.append(seen.append)
    write(files[name], text)
    outcome = reload(reloader, gateway)
    assert not outcome.ok
    assert gateway.policies is old
    assert outcome.error is not None and f"{files[name]}{expected}" in outcome.error
    [(event, fields)] = gateway.audit.events
    assert event == FAILED_EVENT
    assert fields["error"] == outcome.error
    assert fields["policy_revision"] == old.revision
    status = reloader.status
    assert (status.reloads_ok, status.reloads_failed) == (0, 1)
    assert status.last_error == outcome.error and status.revision == old.revision
    assert seen == [False]


def test_a_missing_file_fails_the_reload(files: dict[str, Path]) -> None:
    reloader, gateway = setup(files)
    files["customers"].unlink()
    outcome = reload(reloader, gateway)
    assert not outcome.ok and "customers.yaml" in (outcome.error or "")


def test_success_clears_the_last_error(files: dict[str, Path]) -> None:
    reloader, gateway = setup(files)
    write(files["default"], "version: 2\n")
    assert not reload(reloader, gateway).ok
    write(files["default"], {"version": 1, "mode": "open"})
    assert reload(reloader, gateway).ok
    public = reloader.status.public()
    assert public["last_error"] is None and public["reloads_failed"] == 1
    assert public["reloads_ok"] == 1


def test_stamp_sees_every_kind_of_change(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "version: 1\n")
    first = stamp((str(path),))
    assert stamp((str(path),)) == first
    write(tmp_path / "new.yaml", "version: 1\n").replace(path)  # an atomic rename
    renamed = stamp((str(path),))
    assert renamed != first
    with path.open("a") as handle:  # an in-place append
        handle.write("mode: open\n")
    assert stamp((str(path),)) != renamed
    path.unlink()
    assert stamp((str(path),)) == ((str(path), None),)


def test_status_public_view_has_no_listeners() -> None:
    status = PolicyStatus("abc", ("/p.yaml",), 1.0)
    status.listeners.append(lambda ok: None)
    assert "listeners" not in status.public()
    assert status.public()["policy_revision"] == "abc"
