"""The rule registry (gateway.rules): one place for every rule id, and the docs follow it."""

from __future__ import annotations

import re

import pytest

from gateway import rules
from gateway.errors import OAuthError
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "policy.md"
GATEWAY = ROOT / "gateway"
TESTS = ROOT / "tests"


def test_the_docs_tables_are_generated_from_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert rules.render_docs(text) == text, (
        "docs/policy.md drifted from gateway/rules.py: run "
        ".venv/bin/python -m gateway.rules docs/policy.md"
    )


def test_every_rule_appears_in_the_docs() -> None:
    text = DOC.read_text(encoding="utf-8")
    for rule in rules.RULES.values():
        if rule.id.startswith("post_logout_redirect_uri."):
            continue  # documented as mirroring redirect_uri.*
        assert f"`{rule.id}`" in text, rule.id


def test_refusing_rules_name_a_wire_error_and_allowing_rules_do_not() -> None:
    for rule in rules.RULES.values():
        if rule.id.startswith("allow."):
            assert rule.error is None, rule.id
        else:
            assert rule.error is not None and issubclass(rule.error, OAuthError), rule.id
            assert rule.status != 500, rule.id


def test_a_refusal_carries_its_rule_id() -> None:
    error = rules.MODE_DISABLED.refuse("closed")
    assert (error.rule, error.status, error.error) == ("mode.disabled", 403, "access_denied")
    with pytest.raises(TypeError):
        rules.ALLOW_OPEN.refuse("no")


def test_a_rule_id_is_defined_once() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        rules._rule("mode.disabled", None, rules.Stage.ALLOW, "again")


_LITERAL = re.compile(r"""rule\s*=\s*["']([a-z_]+\.[a-z_.]+)["']""")


def test_no_module_names_a_rule_id_outside_the_registry() -> None:
    """Rule ids are not spelled as literals next to an error class anywhere in gateway/."""
    offenders = [
        f"{path.relative_to(ROOT)}: {match}"
        for path in GATEWAY.rglob("*.py")
        if path.name != "rules.py"
        for match in _LITERAL.findall(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_every_non_policy_rule_is_exercised_by_some_test() -> None:
    """Policy, body and allow rules need a policy case (tests/unit/policy/test_cases.py);
    the others (request, gateway, upstream) need a test that names them."""
    texts = "\n".join(
        path.read_text(encoding="utf-8")
        for path in TESTS.rglob("*.py")
        if path.name != "test_rules.py"
    )
    missing = [
        rule.id
        for rule in rules.RULES.values()
        if rule.stage in (rules.Stage.REQUEST, rules.Stage.GATEWAY, rules.Stage.UPSTREAM)
        and rule.id not in texts
    ]
    assert missing == []
