"""The policy's controls around the decision (gateway.policy.controls): ``rate_limits``,
``on_storage_error`` and ``initial_access_tokens``, read and validated at load."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config.yamlsource import ConfigError
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.model import OnStorageError, RateCount, RateKey, RateWindow

SHA = hashlib.sha256(b"token-1").hexdigest()


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        policy_from_mapping({"version": 1, **data})
    return [(p.path, p.message) for p in caught.value.problems]


def test_no_controls_by_default() -> None:
    policy = policy_from_mapping({"version": 1})
    assert policy.rate_limits == ()
    assert policy.on_storage_error is OnStorageError.FAIL_CLOSED
    assert policy.initial_access_tokens.required is False
    assert policy.initial_access_tokens.tokens == ()


def test_rate_limits_are_parsed_with_the_limits_syntax() -> None:
    policy = policy_from_mapping(
        {
            "version": 1,
            "rate_limits": [
                {"name": "per-ip", "key": "client_ip", "limit": "20/hour;100/day"},
                {
                    "name": "per-vendor",
                    "key": "vendor",
                    "limit": "5 per 2 minutes",
                    "count": "registrations",
                },
            ],
            "on_storage_error": "fail_open",
        }
    )
    first, second = policy.rate_limits
    assert (first.name, first.key, first.count) == ("per-ip", RateKey.CLIENT_IP, RateCount.ATTEMPTS)
    assert first.windows == (RateWindow(20, 3600), RateWindow(100, 86400))
    assert first.rule_id == "rate_limit.per-ip"
    assert first.limit == "20/hour;100/day"
    assert (second.key, second.count) == (RateKey.VENDOR, RateCount.REGISTRATIONS)
    assert second.windows == (RateWindow(5, 120),)
    assert policy.on_storage_error is OnStorageError.FAIL_OPEN


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"name": "a", "key": "client_ip", "limit": "often"}, ("rate_limits[0].limit", "is not")),
        (
            {"name": "a", "key": "client_ip", "limit": "0/hour"},
            ("rate_limits[0].limit", "at least 1"),
        ),
        ({"name": "a", "key": "client_ip", "limit": "1/year"}, ("rate_limits[0].limit", "31 days")),
        (
            {"name": "a", "key": "cookie", "limit": "1/hour"},
            ("rate_limits[0].key", "must be one of"),
        ),
        (
            {"name": "A b", "key": "global", "limit": "1/hour"},
            ("rate_limits[0].name", "not a name"),
        ),
        ({"key": "global", "limit": "1/hour"}, ("rate_limits[0].name", "is required")),
        ({"name": "a", "limit": "1/hour"}, ("rate_limits[0].key", "is required")),
        ({"name": "a", "key": "global"}, ("rate_limits[0].limit", "is required")),
        (
            {"name": "a", "key": "global", "limit": "1/hour", "count": "all"},
            ("rate_limits[0].count", "must be one of"),
        ),
        (
            {"name": "a", "key": "global", "limit": "1/hour", "scope": "x"},
            ("rate_limits[0].scope", "unknown key"),
        ),
        ("per-ip", ("rate_limits[0]", "must be a mapping")),
    ],
)
def test_bad_rate_rules_name_the_key(rules: Any, expected: tuple[str, str]) -> None:
    problems = problems_of({"rate_limits": [rules]})
    assert [(path, message) for path, message in problems if expected[1] in message] == [
        (expected[0], next(m for p, m in problems if expected[1] in m))
    ], problems


def test_a_rule_name_used_twice_is_a_problem() -> None:
    rule = {"name": "a", "key": "global", "limit": "1/hour"}
    assert problems_of({"rate_limits": [rule, rule]}) == [
        ("rate_limits[1].name", "rule name 'a' is used twice")
    ]


def test_rate_limits_must_be_a_list() -> None:
    assert problems_of({"rate_limits": {"name": "a"}})[0][0] == "rate_limits"


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "rate_limits": [{"name": "a", "key": "cookie", "limit": "often"}],
            "on_storage_error": "ignore",
            "initial_access_tokens": {"required": "yes", "tokens": [{"name": "t"}]},
        }
    )
    assert [path for path, _ in problems] == [
        "rate_limits[0].key",
        "rate_limits[0].limit",
        "on_storage_error",
        "initial_access_tokens.required",
        "initial_access_tokens.tokens[0].sha256",
    ]


def test_tokens_are_read_by_hash() -> None:
    policy = policy_from_mapping(
        {
            "version": 1,
            "initial_access_tokens": {
                "required": True,
                "tokens": [
                    {
                        "name": "partner-acme",
                        "sha256": SHA.upper(),
                        "expires": "2027-06-30T00:00:00Z",
                        "max_uses": 50,
                    },
                    {"name": "forever", "sha256": hashlib.sha256(b"2").hexdigest()},
                ],
            },
        }
    )
    tokens = policy.initial_access_tokens
    assert tokens.required is True
    first, second = tokens.tokens
    assert first.digest == bytes.fromhex(SHA)
    assert first.expires == datetime(2027, 6, 30, tzinfo=UTC).timestamp()
    assert first.max_uses == 50
    assert (second.expires, second.max_uses, second.policy) == (None, None, None)


@pytest.mark.parametrize(
    ("token", "path", "message"),
    [
        ({"name": "t", "sha256": "abc"}, "sha256", "64 characters"),
        ({"name": "t", "sha256": "g" * 64}, "sha256", "64 characters"),
        ({"name": "t", "sha256": SHA, "expires": "tomorrow"}, "expires", "not a date-time"),
        ({"name": "t", "sha256": SHA, "expires": "2027-06-30T00:00:00"}, "expires", "time zone"),
        ({"name": "t", "sha256": SHA, "max_uses": 0}, "max_uses", "at least 1"),
        ({"name": "t", "sha256": SHA, "secret": "x"}, "secret", "unknown key"),
        ({"sha256": SHA}, "name", "is required"),
    ],
)
def test_bad_tokens_name_the_key(token: dict[str, Any], path: str, message: str) -> None:
    problems = problems_of({"initial_access_tokens": {"tokens": [token]}})
    assert len(problems) == 1, problems
    assert problems[0][0] == f"initial_access_tokens.tokens[0].{path}"
    assert message in problems[0][1]


def test_a_token_listed_twice_is_a_problem() -> None:
    token = {"name": "a", "sha256": SHA}
    problems = problems_of({"initial_access_tokens": {"tokens": [token, {**token, "name": "b"}]}})
    assert problems == [
        ("initial_access_tokens.tokens[1].sha256", "the same token is listed twice")
    ]


def test_yaml_timestamps_need_a_zone(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ninitial_access_tokens:\n  tokens:\n"
        f"    - {{name: a, sha256: {SHA}, expires: 2027-06-30T00:00:00Z}}\n"
        f"    - {{name: b, sha256: '{'0' * 64}', expires: 2027-06-30 10:00:00}}\n"
        f"    - {{name: c, sha256: '{'1' * 64}', expires: 2027-06-30}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    located = [(p.path, p.location) for p in caught.value.problems]
    assert located == [
        ("initial_access_tokens.tokens[1].expires", f"{path}:5"),
        ("initial_access_tokens.tokens[2].expires", f"{path}:6"),
    ]


def test_a_token_may_name_the_policy_its_registrations_are_judged_by(tmp_path: Path) -> None:
    (tmp_path / "partner.yaml").write_text("version: 1\nmode: open\n", encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text(
        "version: 1\nmode: allowlist\ninitial_access_tokens:\n  tokens:\n"
        f"    - {{name: partner, sha256: {SHA}, policy: partner.yaml}}\n",
        encoding="utf-8",
    )
    policy = load_policy(main)
    (token,) = policy.initial_access_tokens.tokens
    assert token.policy is not None
    assert token.policy.mode.value == "open"
    assert token.policy.source == str(tmp_path / "partner.yaml")
    assert token.policy.revision != policy.revision


def test_a_token_policy_carries_no_controls_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "partner.yaml").write_text(
        "version: 1\nrate_limits: []\ninitial_access_tokens: {required: true}\n", encoding="utf-8"
    )
    main = tmp_path / "main.yaml"
    main.write_text(
        "version: 1\ninitial_access_tokens:\n  tokens:\n"
        f"    - {{name: partner, sha256: {SHA}, policy: partner.yaml}}\n"
        f"    - {{name: gone, sha256: '{'0' * 64}', policy: missing.yaml}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(main)
    found = [(p.path, p.location, p.message) for p in caught.value.problems]
    partner = str(tmp_path / "partner.yaml")
    assert (found[0][0], found[0][1]) == ("rate_limits", f"{partner}:2")
    assert "no effect in a token's policy" in found[0][2]
    assert (found[1][0], found[1][1]) == ("initial_access_tokens", f"{partner}:3")
    assert found[2][:2] == ("initial_access_tokens.tokens[1].policy", f"{main}:5")
    assert found[2][2].startswith(f"{tmp_path / 'missing.yaml'}: cannot read")
    assert len(found) == 3


def test_the_shipped_default_policy_limits_registrations() -> None:
    from tests.support.paths import ROOT

    policy = load_policy(ROOT / "policies" / "default.yaml")
    keys = {rule.key for rule in policy.rate_limits}
    assert {RateKey.CLIENT_IP, RateKey.VENDOR} <= keys
    assert policy.on_storage_error is OnStorageError.FAIL_CLOSED
