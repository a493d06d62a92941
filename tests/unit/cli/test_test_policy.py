"""``dcr-gateway test-policy``: files and folders, broken cases at file:line, selection,
coverage and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.policy.cases import policy_rules
from tests.support.paths import POLICY_CASES

POLICY = (
    "policy: {version: 1, mode: allowlist, redirect_uris: {managed_list: none, "
    "allow: ['https://app.example.com/cb']}}\n"
)
GOOD = (
    "  - name: the app registers\n"
    "    request: {redirect_uris: ['https://app.example.com/cb'], scope: openid}\n"
    "    expect: {decision: allowed, rule: allow.custom}\n"
)
WRONG = (
    "  - name: a wrong expectation\n"
    "    request: {redirect_uris: ['https://evil.example.com/cb']}\n"
    "    expect: {decision: allowed}\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["test-policy", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_broken_case_is_reported_at_its_line_and_the_run_goes_on(tmp_path, capsys):
    cases = write(
        tmp_path / "cases.yaml",
        POLICY
        + "cases:\n"
        + GOOD
        + "  - name: no expectation\n    request: {}\n"  # line 6
        + "  - name: a typo\n    request: {}\n    expekt: {decision: denied}\n"  # line 8
        + "    expect: {decision: denied, rule: redirect_uri.missing}\n"
        + GOOD.replace("the app registers", "the app registers again"),
    )
    write(tmp_path / "other.yaml", POLICY + "cases:\n" + GOOD)
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 1
    assert f"ERROR {cases}:6: cases[1]: a case needs expect" in out
    assert f"ERROR {cases}:10: cases[2].expekt: unknown key" in out
    assert "hint: did you mean 'expect'?" in out
    assert out.strip().splitlines()[-1] == "3 passed, 0 failed, 2 errors"


def test_a_broken_file_does_not_stop_the_others(tmp_path, capsys):
    broken = write(tmp_path / "a.yaml", "policy: {version: 1}\ncases:\n  - name: x\n\tbad\n")
    bad_policy = write(
        tmp_path / "b.yaml", "policy:\n  version: 1\n  mode: sometimes\ncases:\n" + GOOD
    )
    write(tmp_path / "c.yml", POLICY + "cases:\n" + GOOD)
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 1
    assert f"ERROR {broken}:4:1: (file): not valid YAML" in out
    assert "hint: YAML indentation must use spaces" in out
    assert f"ERROR {bad_policy}:3: policy.mode: must be one of open, allowlist, disabled" in out
    assert out.strip().splitlines()[-1] == "1 passed, 0 failed, 2 errors"


def test_a_failing_case_names_its_location(tmp_path, capsys):
    cases = write(tmp_path / "cases.yaml", POLICY + "cases:\n" + GOOD + WRONG)
    code, out, _ = run(capsys, str(cases))
    assert code == 1
    assert f"FAIL  cases::a wrong expectation ({cases}:6)" in out
    assert "decision: expected 'allowed', got 'denied'" in out


def test_files_and_folders_recursing_into_yaml_and_yml(tmp_path, capsys):
    write(tmp_path / "one" / "a.yaml", POLICY + "cases:\n" + GOOD)
    write(tmp_path / "one" / "deeper" / "b.yml", POLICY + "cases:\n" + GOOD)
    write(tmp_path / "one" / "notes.txt", "not a case file")
    single = write(tmp_path / "two.yaml", POLICY + "cases:\n" + GOOD)
    code, out, _ = run(capsys, str(tmp_path / "one"), str(single), "-v")
    assert code == 0
    assert out.splitlines() == [
        "PASS  a::the app registers",
        "PASS  b::the app registers",
        "PASS  two::the app registers",
        "3 passed, 0 failed",
    ]


def test_an_empty_folder_says_no_case_files_found(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "README.md", "# nothing here")
    code, out, err = run(capsys, str(tmp_path / "empty"))
    assert code == 1
    assert err == f"error: no case files found in {tmp_path / 'empty'} (*.yaml, *.yml)\n"
    assert out == ""


def test_a_missing_path_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, str(tmp_path / "nope"))
    assert code == 2
    assert "no such file or folder" in err


def _two_cases(tmp_path: Path) -> Path:
    return write(
        tmp_path / "cases.yaml",
        POLICY
        + "cases:\n"
        + GOOD
        + "  - name: evil is refused\n"
        + "    request: {redirect_uris: ['https://evil.example.com/cb']}\n"
        + "    expect: {decision: denied, rule: redirect_uri.not_allowed}\n",
    )


def test_k_selects_cases_by_substring(tmp_path, capsys):
    cases = _two_cases(tmp_path)
    code, out, _ = run(capsys, str(cases), "-k", "evil", "-v")
    assert code == 0
    assert out.splitlines() == ["PASS  cases::evil is refused", "1 passed, 0 failed"]


def test_run_selects_cases_by_regex(tmp_path, capsys):
    cases = _two_cases(tmp_path)
    code, out, _ = run(capsys, str(cases), "--run", r"^cases::the .* registers$", "-v")
    assert code == 0
    assert out.splitlines() == ["PASS  cases::the app registers", "1 passed, 0 failed"]


def test_a_selection_matching_nothing_fails(tmp_path, capsys):
    cases = _two_cases(tmp_path)
    code, _, err = run(capsys, str(cases), "-k", "no such case")
    assert code == 1
    assert "no cases match" in err


def test_a_bad_regex_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, str(_two_cases(tmp_path)), "--run", "(")
    assert code == 2
    assert "is not a regular expression" in err


def test_coverage_lists_the_policy_rules_no_case_reaches(tmp_path, capsys):
    code, out, _ = run(capsys, str(_two_cases(tmp_path)), "--coverage")
    assert code == 0
    lines = out.splitlines()
    total = len(policy_rules())
    assert lines[1] == f"coverage: 1 of {total} policy rules exercised"
    missing = [line.removeprefix("  not exercised: ") for line in lines[2:]]
    assert "redirect_uri.not_allowed" not in missing
    assert "mode.disabled" in missing
    assert len(missing) == total - 1


def test_the_shipped_cases_cover_every_policy_rule(capsys):
    code, out, _ = run(capsys, str(POLICY_CASES), "--coverage")
    assert code == 0
    total = len(policy_rules())
    assert out.splitlines()[-1] == f"coverage: {total} of {total} policy rules exercised"


def test_junit_xml_is_valid_and_complete(tmp_path, capsys):
    cases = write(tmp_path / "cases.yaml", POLICY + "cases:\n" + GOOD + WRONG)
    write(tmp_path / "broken.yaml", POLICY + "cases:\n  - name: x\n    request: {}\n")
    report = tmp_path / "out" / "junit.xml"
    code, _, _ = run(capsys, str(tmp_path), "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    suite = suites[str(cases)]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    passed, failed = suite.findall("testcase")
    assert passed.get("name") == "the app registers"
    assert passed.get("classname") == "cases"
    assert passed.get("line") == "3"
    assert passed.find("failure") is None
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "decision: expected 'allowed', got 'denied'"
    broken = suites[str(tmp_path / "broken.yaml")]
    (error_case,) = broken.findall("testcase")
    error = error_case.find("error")
    assert error is not None
    assert "a case needs expect" in (error.get("message") or "")
    assert float(root.get("time") or "-1") >= 0
