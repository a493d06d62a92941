"""The policy test cases under tests/policy_cases/, run as data.

Each case file is one policy and many requests with the decision expected for each
(``gateway.policy.cases``); this module runs every case, checks that ``dcr-gateway
test-policy`` counts the same cases, and that the cases cover every rule id.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gateway import rules
from gateway.cli import main
from gateway.policy.cases import Case, discover, load_cases, run_case
from gateway.uri import parse as uris
from tests.support.paths import POLICY_CASES

CASES_DIR = POLICY_CASES


def _load_all() -> list[Case]:
    return [case for path in discover(CASES_DIR) for case in load_cases(path)]


ALL_CASES = _load_all()

#: Every rule a policy case can reach: the policy's own, the body's and the allowing ones,
#: straight from the registry, so a new rule without a case fails here.
REQUIRED_RULES = {
    rule.id
    for rule in rules.RULES.values()
    if rule.stage in (rules.Stage.POLICY, rules.Stage.BODY, rules.Stage.ALLOW)
}
ALLOW_RULES = {rule.id for rule in rules.by_stage(rules.Stage.ALLOW)}


def test_the_parser_s_rules_are_in_the_registry() -> None:
    assert set(uris.RULES) <= set(rules.RULES)


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.id for case in ALL_CASES])
def test_policy_case(case: Case) -> None:
    outcome = run_case(case)
    assert outcome.passed, f"{case.id}:\n  " + "\n  ".join(outcome.failures)


def test_case_ids_are_unique() -> None:
    counts = Counter(case.id for case in ALL_CASES)
    assert [case_id for case_id, n in counts.items() if n > 1] == []


def test_cli_counts_the_same_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test-policy", str(CASES_DIR)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().splitlines()[-1] == f"{len(ALL_CASES)} passed, 0 failed"


def test_every_rule_id_has_a_case() -> None:
    covered = {case.expect.get("rule") for case in ALL_CASES}
    assert sorted(REQUIRED_RULES - covered) == []


def test_every_allow_rule_case_states_matched_and_vendor() -> None:
    stated = {
        case.expect["rule"]
        for case in ALL_CASES
        if case.expect.get("rule") in ALLOW_RULES
        and "matched" in case.expect
        and "vendor" in case.expect
    }
    assert stated == ALLOW_RULES


def test_every_denial_states_its_wire_error() -> None:
    incomplete = [
        case.id
        for case in ALL_CASES
        if case.expect.get("decision") == "denied"
        and not {"rule", "error", "status"} <= set(case.expect)
    ]
    assert incomplete == []


def test_every_case_states_its_decision() -> None:
    assert [case.id for case in ALL_CASES if "decision" not in case.expect] == []


def test_attacks_are_numerous_and_all_denied() -> None:
    attacks = [case for case in ALL_CASES if case.file.name == "attacks.yaml"]
    assert len(attacks) >= 40
    assert {case.expect["decision"] for case in attacks} == {"denied"}


def test_every_managed_entry_has_an_allowed_registration() -> None:
    from gateway.policy.managed import load_managed

    """By its own pattern (``matched``) or, for a loopback URI that an earlier entry shares,
    by its client_name (``vendor``)."""
    allowed = [
        case
        for case in ALL_CASES
        if case.file.name == "managed.yaml" and case.expect.get("decision") == "allowed"
    ]
    recognised = {label.removeprefix("managed:") for c in allowed for label in c.expect["matched"]}
    recognised |= {c.expect["vendor"] for c in allowed if c.expect["vendor"]}
    assert recognised == {client.id for client in load_managed()}


def test_a_failing_case_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The runner really compares: a wrong expectation fails, and the CLI exits 1."""
    (tmp_path / "wrong.yaml").write_text(
        "policy: {version: 1}\n"
        "cases:\n"
        "  - name: wrong rule\n"
        "    request: {redirect_uris: ['https://claude.ai/api/mcp/auth_callback']}\n"
        "    expect: {decision: allowed, rule: allow.custom, vendor: chatgpt}\n"
        "  - name: a denial without a rule\n"
        "    request: {redirect_uris: ['https://evil.example/cb']}\n"
        "    expect: {decision: denied}\n",
        encoding="utf-8",
    )
    first, second = load_cases(tmp_path / "wrong.yaml")
    assert run_case(first).failures == (
        "rule: expected 'allow.custom', got 'allow.managed'",
        "vendor: expected 'chatgpt', got 'claude'",
    )
    assert run_case(second).failures == ("a denial must name the rule it expects",)
    assert main(["test-policy", str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "0 passed, 2 failed"


def test_a_case_knows_its_line_and_broken_cases_do_not_hide_the_others(tmp_path: Path) -> None:
    from gateway.policy.cases import read_case_file

    path = tmp_path / "c.yaml"
    path.write_text(
        "policy: {version: 1}\n"
        "cases:\n"
        "  - name: first\n"
        "    request: {redirect_uris: ['https://evil.example/cb']}\n"
        "    expect: {decision: denied, rule: redirect_uri.not_allowed}\n"
        "  - name: broken\n"
        "    request: {}\n"
        "    expect: {decision: maybe}\n"
        "  - name: third\n"
        "    request: {redirect_uris: ['https://evil.example/cb']}\n"
        "    expect: {decision: denied, rule: redirect_uri.not_allowed}\n",
        encoding="utf-8",
    )
    read = read_case_file(path)
    assert [(c.name, c.location) for c in read.cases] == [
        ("first", f"{path}:3"),
        ("third", f"{path}:9"),
    ]
    assert [(p.path, p.location, p.message) for p in read.problems] == [
        ("cases[1].expect.decision", f"{path}:8", "must be allowed, denied or would_deny")
    ]


def test_discover_takes_files_and_folders_once_each(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/x.yaml", "a/y.yml", "a/z.txt", "b.yaml"):
        (tmp_path / name).write_text("", encoding="utf-8")
    found = list(discover(tmp_path / "a", tmp_path / "a" / "x.yaml", tmp_path / "b.yaml"))
    assert found == [tmp_path / "a" / "x.yaml", tmp_path / "a" / "y.yml", tmp_path / "b.yaml"]
