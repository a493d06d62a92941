"""Credentials in the deployment settings: the admin token (by environment variable, kept
as a digest) and the upstream's initial access token (never shown)."""

from __future__ import annotations

import hashlib

from gateway.config.settings import Settings, read_settings
from gateway.config.yamlsource import Problem, parse_text
from tests.support.paths import ROOT

BASE = ROOT
TOKEN = "0123456789abcdef0123456789abcdef0123"


def load(text: str, env: dict[str, str]) -> tuple[Settings, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(
        "upstream: {url: 'http://127.0.0.1:3000'}\npolicy_file: p.yaml\n" + text,
        "config.yaml",
        problems,
        env=env,
    )
    return read_settings(document, BASE, problems, env), problems


def test_the_admin_api_is_off_without_a_token_env() -> None:
    settings, problems = load("", {})
    assert problems == []
    assert settings.admin.token_digest is None


def test_the_admin_token_is_kept_as_its_digest_only() -> None:
    settings, problems = load("admin: {token_env: ADMIN}\n", {"ADMIN": TOKEN})
    assert problems == []
    assert settings.admin.token_env == "ADMIN"
    assert settings.admin.token_digest == hashlib.sha256(TOKEN.encode()).digest()
    assert TOKEN not in repr(settings)
    assert settings.admin.token_digest.hex() not in repr(settings)


def test_an_unset_short_or_misnamed_admin_token_is_a_problem() -> None:
    for env, text, expected in [
        ({}, "admin: {token_env: ADMIN}\n", "environment variable ADMIN is not set"),
        ({"ADMIN": "s3cr3t"}, "admin: {token_env: ADMIN}\n", "shorter than 32 characters"),
        ({}, "admin: {token_env: 'not a name'}\n", "is not an environment variable name"),
    ]:
        settings, problems = load(text, env)
        assert [(p.path, p.location) for p in problems] == [("admin.token_env", "config.yaml:3")]
        assert expected in problems[0].message
        assert settings.admin.token_digest is None
        assert "s3cr3t" not in problems[0].message  # the value is never echoed


def test_the_upstream_initial_access_token_is_never_shown() -> None:
    settings, _ = load("", {})
    assert settings.upstream.initial_access_token is None
    problems: list[Problem] = []
    document = parse_text(
        "upstream:\n  url: http://127.0.0.1:3000\n  initial_access_token: ${IAT}\n"
        "policy_file: p.yaml\n",
        "config.yaml",
        problems,
        env={"IAT": "kc-iat-SECRET"},
    )
    settings = read_settings(document, BASE, problems, {})
    assert problems == []
    assert settings.upstream.initial_access_token is not None
    assert settings.upstream.initial_access_token.value == "kc-iat-SECRET"
    assert "kc-iat-SECRET" not in repr(settings)
