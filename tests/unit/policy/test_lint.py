"""Warnings about valid policies: dead and shadowed patterns, stale managed entries."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.config.yamlsource import Problem, load_file
from gateway.policy.lint import covers, lint
from gateway.policy.loader import load_policy, policy_from_mapping, read_policy
from gateway.policy.patterns import LoopbackMode, compile_pattern
from tests.support.paths import ROOT

TODAY = date(2026, 12, 1)


def warnings(data: dict[str, Any], today: date = TODAY) -> list[tuple[str, str]]:
    policy = policy_from_mapping({"version": 1, **data})
    return [(w.path, w.message) for w in lint(policy, today)]


def custom(allow: list[str], **red: Any) -> dict[str, Any]:
    return {"redirect_uris": {"managed_list": "none", "allow": allow, **red}}


def test_the_shipped_default_policy_has_no_warnings() -> None:
    assert lint(load_policy(ROOT / "policies" / "default.yaml"), TODAY) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("https://a.example.com/oauth/*", "https://a.example.com/oauth/cb", True),
        ("https://a.example.com/oauth/cb", "https://a.example.com/oauth/*", False),
        ("https://a.example.com/*", "https://a.example.com/oauth/cb", False),  # * stays in /
        ("https://a.example.com/*/cb", "https://a.example.com/v*/cb", True),
        ("https://a.example.com/v*/cb", "https://a.example.com/*/cb", False),
        ("https://*.example.com/cb", "https://a.example.com/cb", True),
        ("https://*.example.com/cb", "https://a.b.example.com/cb", False),
        ("https://*.example.com/cb", "https://*.example.com/cb", True),
        ("https://a.example.com:*/cb", "https://a.example.com:8443/cb", True),
        ("https://a.example.com/cb", "https://a.example.com:*/cb", False),
        ("https://a.example.com/cb?*", "https://a.example.com/cb?x=1", True),
        ("https://a.example.com/cb", "https://a.example.com/cb?x=1", False),
        ("http://localhost/cb", "http://localhost:8080/cb", True),  # any_port
        ("cursor://*/cb", "cursor://anysphere.cursor-mcp/cb", True),
        ("https://a.example.com/cb", "cursor://a.example.com/cb", False),
    ],
)
def test_covers(a: str, b: str, expected: bool) -> None:
    assert covers(compile_pattern(a, "custom"), compile_pattern(b, "custom")) is expected


def test_loopback_ports_are_exact_under_loopback_exact() -> None:
    a = compile_pattern("http://localhost/cb", "custom")
    b = compile_pattern("http://localhost:8080/cb", "custom")
    assert covers(a, b, LoopbackMode.ANY_PORT)
    assert not covers(a, b, LoopbackMode.EXACT)


def test_a_narrower_pattern_after_a_broader_one_is_shadowed() -> None:
    found = warnings(
        custom(["https://app.example.com/oauth/*", "https://app.example.com/oauth/cb"])
    )
    assert found == [
        (
            "redirect_uris.allow[1]",
            "pattern 'https://app.example.com/oauth/cb' is shadowed: every URI it matches is "
            "already matched by redirect_uris.allow[0] ('https://app.example.com/oauth/*')",
        )
    ]


def test_a_narrower_pattern_before_a_broader_one_is_shadowed_too() -> None:
    found = warnings(custom(["https://a.example.com/cb", "https://*.example.com/cb"]))
    assert [path for path, _ in found] == ["redirect_uris.allow[0]"]


def test_of_two_equal_patterns_the_second_is_reported() -> None:
    found = warnings(custom(["https://a.example.com/cb", "https://A.example.com/cb"]))
    assert found == [
        (
            "redirect_uris.allow[1]",
            "pattern 'https://A.example.com/cb' repeats redirect_uris.allow[0] "
            "('https://a.example.com/cb')",
        )
    ]


def test_unrelated_patterns_are_not_shadowed() -> None:
    assert warnings(custom(["https://a.example.com/cb", "https://b.example.com/cb"])) == []


def test_a_custom_pattern_a_managed_entry_covers_is_shadowed() -> None:
    found = warnings(
        {
            "redirect_uris": {
                "managed_list": ["claude"],
                "allow": ["https://claude.ai/api/mcp/auth_callback"],
            }
        }
    )
    assert found == [
        (
            "redirect_uris.allow[0]",
            "pattern 'https://claude.ai/api/mcp/auth_callback' repeats managed entry 'claude' "
            "('https://claude.ai/api/mcp/auth_callback')",
        )
    ]


def test_shadowing_in_the_block_list() -> None:
    found = warnings(custom([], block=["https://*.bad.example/cb", "https://x.bad.example/cb"]))
    assert [path for path, _ in found] == ["redirect_uris.block[1]"]


def test_an_allow_pattern_the_block_list_covers_never_matches() -> None:
    found = warnings(custom(["https://x.bad.example/cb"], block=["https://*.bad.example/*"]))
    assert found == [
        (
            "redirect_uris.allow[0]",
            "pattern 'https://x.bad.example/cb' can never allow anything: every URI it matches "
            "is blocked by redirect_uris.block[0] 'https://*.bad.example/*' (the block list is "
            "checked first)",
        )
    ]


def test_a_loopback_pattern_under_loopback_deny_never_matches() -> None:
    found = warnings(custom(["http://127.0.0.1/callback"], loopback="deny"))
    assert found == [
        (
            "redirect_uris.allow[0]",
            "pattern 'http://127.0.0.1/callback' can never match: this policy has loopback: "
            "deny, which refuses every loopback redirect URI first",
        )
    ]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("cursor://app/metadata", "not_https"),
        ("https://1.2.3.4/metadata.json", "ip_address"),
        ("https://metadata.example.com", "has no path"),
        ("https://intranet/metadata.json", "internal_host"),
    ],
)
def test_a_cimd_pattern_no_client_id_url_can_match(pattern: str, why: str) -> None:
    found = warnings({"cimd": {"allow": [pattern]}})
    assert len(found) == 1
    path, message = found[0]
    assert path == "cimd.allow[0]"
    assert message.startswith(f"pattern {pattern!r} can never match")
    assert why in message


def test_a_valid_cimd_pattern_is_quiet() -> None:
    assert warnings({"cimd": {"allow": ["https://*.example.com/oauth/metadata.json"]}}) == []


def test_warnings_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nredirect_uris:\n  managed_list: none\n  allow:\n"
        "    - https://app.example.com/*\n    - https://app.example.com/cb-x\n"
        "    - https://app.example.com/cb-x\n",
        encoding="utf-8",
    )
    problems: list[Problem] = []
    document = load_file(path, problems)
    policy = read_policy(document, problems)
    assert problems == []
    found = lint(policy, TODAY, document)
    assert [(w.location, w.path) for w in found] == [
        (f"{path}:6", "redirect_uris.allow[1]"),  # under allow[0]
        (f"{path}:7", "redirect_uris.allow[2]"),  # under allow[0] (and repeats allow[1])
    ]


def test_managed_entries_verified_over_a_year_ago() -> None:
    data = {
        "redirect_uris": {"managed_list": ["claude", "chatgpt"]},
        "cimd": {"managed_list": "none"},
    }
    assert warnings(data, date(2027, 11, 24)) == []  # 365 days: not yet
    found = warnings(data, date(2027, 11, 26))
    assert found == [
        (
            "redirect_uris.managed_list",
            f"managed entry {entry!r} was last verified on 2026-11-24, 367 days ago: its "
            "redirect URIs may have changed since",
        )
        for entry in ("claude", "chatgpt")
    ]


def test_stale_entries_the_policy_does_not_select_are_not_reported() -> None:
    data = {"redirect_uris": {"managed_list": "none"}, "cimd": {"managed_list": "none"}}
    assert warnings(data, date(2030, 1, 1)) == []


def test_an_entry_selected_for_cimd_only_is_reported_there() -> None:
    data = {"redirect_uris": {"managed_list": "none"}, "cimd": {"managed_list": ["claude"]}}
    assert [path for path, _ in warnings(data, date(2030, 1, 1))] == ["cimd.managed_list"]
