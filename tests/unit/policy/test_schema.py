"""The policy's JSON Schema: generated from gateway/policy/spec.py, shipped, and true to the
loader (every shipped policy validates; the loader's known keys are the schema's)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config.yamlsource import ConfigError, Problem, load_file
from gateway.policy import schema, spec
from gateway.policy.loader import policy_from_mapping
from tests.support.paths import POLICY_CASES, ROOT

SHIPPED = ROOT / schema.SHIPPED


def plain(value: Any) -> Any:
    """YAML data as an editor's language server sees it: timestamps stay text."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SHIPPED.read_text(encoding="utf-8")))


def errors(data: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator().iter_errors(plain(data))
    ]


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert shipped == schema.render(), (
        f"{schema.SHIPPED} is out of date with gateway/policy/spec.py; regenerate it with: "
        f"{schema.REGENERATE}"
    )


def test_the_schema_is_valid_draft_2020_12() -> None:
    generated = schema.generate()
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(generated)


def test_the_regeneration_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "policy.schema.json"
    assert schema.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema.render()


def _shipped_policies() -> list[tuple[str, Any]]:
    out = []
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        out.append((path.name, yaml.safe_load(path.read_text(encoding="utf-8"))))
    for path in sorted(POLICY_CASES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data.get("policy"), dict):
            out.append((f"{path.name}#policy", data["policy"]))
    return out


SHIPPED_POLICIES = _shipped_policies()


@pytest.mark.parametrize(("name", "data"), SHIPPED_POLICIES, ids=[n for n, _ in SHIPPED_POLICIES])
def test_every_shipped_policy_validates(name: str, data: Any) -> None:
    assert errors(data) == []


def test_the_shipped_policies_name_the_schema() -> None:
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./policy.schema.json", path


def _keys(node: Any) -> set[str]:
    return set(node["properties"])


def test_the_schema_s_keys_are_the_loader_s() -> None:
    """An unknown key is refused by both, a known one accepted by both."""
    generated = schema.generate()
    assert _keys(generated) == spec.TOP.names
    red = generated["properties"]["redirect_uris"]
    assert _keys(red) == spec.REDIRECT.names
    tokens = generated["properties"]["initial_access_tokens"]["properties"]["tokens"]
    assert _keys(tokens["items"]) == spec.TOKEN.names
    # The loader refuses each key the schema does not list ...
    with pytest.raises(ConfigError, match="unknown key"):
        policy_from_mapping({"version": 1, "redirect_uris": {"blok": []}})
    assert errors({"version": 1, "redirect_uris": {"blok": []}}) != []
    # ... and the schema accepts every key the loader does, with each default.
    every_default = {"version": 1}
    for name, node in spec.TOP.keys.items():
        if isinstance(node, spec.Section):
            every_default[name] = {
                k: child.default
                for k, child in node.keys.items()
                if isinstance(child, spec.Value) and child.default is not None
            }
        elif isinstance(node, spec.Value) and node.default is not None:
            every_default[name] = node.default
    assert errors(every_default) == []
    policy_from_mapping(every_default)


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "allowlist"},  # version is required
        {"version": 2},
        {"version": 1, "mode": "sometimes"},
        {"version": 1, "redirect_uris": {"loopback": False}},
        {"version": 1, "redirect_uris": {"max_redirect_uris": 51}},
        {"version": 1, "client": {"grant_types": ["magic"]}},
        {"version": 1, "client": {"scopes": {"allowed": ["has space"]}}},
        {"version": 1, "rate_limits": [{"name": "x", "key": "client_ip"}]},
        {"version": 1, "initial_access_tokens": {"tokens": [{"name": "a", "sha256": "00"}]}},
        {"version": 1, "approval": {"pending_ttl": "soon"}},
    ],
)
def test_what_the_loader_refuses_the_schema_refuses(data: dict[str, Any]) -> None:
    assert errors(data) != []
    with pytest.raises(ConfigError):
        policy_from_mapping(data)


def test_the_shipped_default_policy_loads_with_its_schema_comment() -> None:
    problems: list[Problem] = []
    document = load_file(ROOT / "policies" / "default.yaml", problems)
    assert problems == []
    assert errors(document.data) == []
