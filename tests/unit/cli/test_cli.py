"""The dcr-gateway command line: check, explain, test-policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import COMMANDS, build_parser, main
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config.example.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_command_is_registered():
    assert [c.name for c in COMMANDS] == [
        "run",
        "check",
        "explain",
        "test-policy",
        "diff",
        "hash-token",
        "registry-key",
        "clients",
        "healthcheck",
    ]
    help_text = build_parser().format_help()
    for command in COMMANDS:
        assert command.name in help_text


def test_check_accepts_the_example_config(capsys):
    assert main(["check", "-c", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "config ok" in out
    assert "mode allowlist" in out


def test_check_lists_every_problem_with_location(tmp_path, capsys):
    policy = write(
        tmp_path / "policy.yaml",
        "version: 1\nmode: sometimes\nredirect_uris:\n  allow: ['https://*.com/cb']\n"
        "  blok: []\nclient:\n  grant_types: [password, magic]\n",
    )
    config = write(
        tmp_path / "config.yaml",
        f"listen: {{port: 99999}}\nupstream: {{url: ftp://x, timeout: soon}}\n"
        f"policy_file: {policy.name}\nextra: 1\n",
    )
    assert main(["check", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    for expected in (
        "config.yaml:1: listen.port",
        "upstream.url",
        "upstream.timeout",
        "config.yaml:3: extra" if False else "extra: unknown key",
        "policy.yaml:2: mode",
        "redirect_uris.allow[0]",
        "policy.yaml:5: redirect_uris.blok: unknown key",
        "client.grant_types[1]",
    ):
        assert expected in err, (expected, err)
    assert "8 problems found" in err


def test_check_reports_a_missing_policy_file(tmp_path, capsys):
    config = write(
        tmp_path / "config.yaml", "upstream: {url: 'http://127.0.0.1:1'}\npolicy_file: nope.yaml\n"
    )
    assert main(["check", "-c", str(config)]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_check_interpolates_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UPSTREAM_URL", "http://127.0.0.1:3000")
    config = write(
        tmp_path / "config.yaml",
        "upstream: {url: '${UPSTREAM_URL}'}\n"
        f"policy_file: {ROOT / 'policies' / 'default.yaml'}\n",
    )
    assert main(["check", "-c", str(config)]) == 0
    monkeypatch.delenv("UPSTREAM_URL")
    assert main(["check", "-c", str(config)]) == 1
    assert "environment variable UPSTREAM_URL is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "code", "rule"),
    [
        (
            {
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                "client_name": "claudeai",
                "scope": "openid",
            },
            0,
            "allow.managed",
        ),
        ({"redirect_uris": ["https://evil.example/cb"]}, 1, "redirect_uri.not_allowed"),
    ],
)
def test_explain_prints_the_decision(tmp_path, capsys, body, code, rule):
    request = write(tmp_path / "request.json", json.dumps(body))
    assert main(["explain", "-c", str(EXAMPLE), str(request)]) == code
    out = capsys.readouterr().out
    assert f"rule:     {rule}" in out
    if code == 0:
        assert "forwarded metadata:" in out
        assert '"token_endpoint_auth_method": "client_secret_basic"' in out


def test_explain_json_output(tmp_path, capsys):
    request = write(
        tmp_path / "request.json",
        json.dumps(
            {
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                "client_name": "claudeai",
                "scope": "openid",
            }
        ),
    )
    assert main(["explain", "-c", str(EXAMPLE), str(request), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decision"] == "allowed"
    assert result["vendor"] == "claude"
    assert result["matched"] == ["managed:claude"]
    assert result["forwarded"]["response_types"] == ["code"]


def test_explain_applies_body_hygiene(tmp_path, capsys):
    request = write(tmp_path / "request.json", '{"client_name": "a", "client_name": "b"}')
    assert main(["explain", "-c", str(EXAMPLE), str(request)]) == 1
    assert "rule:     request.duplicate_key" in capsys.readouterr().out


def test_test_policy_runs_case_files(tmp_path, capsys):
    write(
        tmp_path / "cases.yaml",
        "policy: {version: 1, mode: allowlist, redirect_uris: {managed_list: none, "
        "allow: ['https://app.example.com/cb']}}\n"
        "cases:\n"
        "  - name: allowed\n"
        "    request: {redirect_uris: ['https://app.example.com/cb'], scope: openid}\n"
        "    expect: {decision: allowed, rule: allow.custom}\n"
        "  - name: wrong expectation\n"
        "    request: {redirect_uris: ['https://evil.example.com/cb']}\n"
        "    expect: {decision: allowed}\n",
    )
    assert main(["test-policy", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  cases::wrong expectation" in out
    assert "decision: expected 'allowed', got 'denied'" in out
    assert "1 passed, 1 failed" in out


def test_test_policy_with_no_cases_fails(tmp_path, capsys):
    assert main(["test-policy", str(tmp_path)]) == 1
    assert f"no case files found in {tmp_path}" in capsys.readouterr().err


def _keycloak_config(tmp_path: Path) -> Path:
    default = (ROOT / "policies" / "default.yaml").read_text()
    write(tmp_path / "default.yaml", default)
    write(tmp_path / "closed.yaml", default.replace("mode: allowlist", "mode: disabled"))
    return write(
        tmp_path / "config.yaml",
        "upstream: {url: http://127.0.0.1:3000, profile: keycloak}\n"
        "policy_file: default.yaml\n"
        "tenants: {customers: closed.yaml}\n",
    )


def test_check_lists_each_tenant_policy(tmp_path, capsys):
    config = _keycloak_config(tmp_path)
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "policy ok: " + str(tmp_path / "default.yaml") + " (mode allowlist;" in out
    closed = str(tmp_path / "closed.yaml")
    assert f"tenant customers: policy ok: {closed} (mode disabled;" in out


@pytest.mark.parametrize(
    ("tenant", "code", "rule"),
    [
        (None, 0, "allow.managed"),
        ("customers", 1, "mode.disabled"),
        ("master", 0, "allow.managed"),  # no policy of its own: the default decides
    ],
)
def test_explain_uses_the_tenant_policy(tmp_path, capsys, tenant, code, rule):
    config = _keycloak_config(tmp_path)
    request = write(
        tmp_path / "request.json",
        json.dumps({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}),
    )
    argv = ["explain", "-c", str(config), str(request)]
    if tenant is not None:
        argv += ["--tenant", tenant]
    assert main(argv) == code
    assert f"rule:     {rule}" in capsys.readouterr().out


def test_explain_refuses_a_tenant_in_the_wrong_case(tmp_path, capsys):
    config = _keycloak_config(tmp_path)
    request = write(tmp_path / "request.json", "{}")
    assert main(["explain", "-c", str(config), str(request), "--tenant", "Customers"]) == 2
    assert "realm names are case-sensitive" in capsys.readouterr().err


def test_check_lists_the_rate_limits_and_tokens(tmp_path, capsys):
    policy = write(
        tmp_path / "policy.yaml",
        "version: 1\nrate_limits:\n"
        "  - {name: per-ip, key: client_ip, limit: 20/hour;100/day}\n"
        "on_storage_error: fail_open\n"
        "initial_access_tokens:\n  required: true\n"
        f"  tokens: [{{name: a, sha256: '{'0' * 64}'}}]\n",
    )
    config = write(
        tmp_path / "config.yaml",
        f"upstream: {{url: 'http://127.0.0.1:1'}}\npolicy_file: {policy}\n",
    )
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "  rate limit per-ip: 20/hour;100/day per client_ip, counting attempts\n" in out
    assert "  on storage error: fail_open\n" in out
    assert "  initial access tokens: 1 listed, required\n" in out


def test_explain_names_the_rate_limit_buckets(tmp_path, capsys):
    request = write(
        tmp_path / "request.json",
        json.dumps(
            {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "client_name": "Claude"}
        ),
    )
    argv = ["explain", "-c", str(EXAMPLE), str(request), "--client-ip", "2001:db8::7", "--json"]
    assert main(argv) == 0
    limits = {limit["name"]: limit for limit in json.loads(capsys.readouterr().out)["rate_limits"]}
    assert limits["per-ip"]["bucket"] == "2001:db8::/64"  # an IPv6 caller counts by its /64
    assert limits["per-vendor"]["bucket"] == "managed:claude"
    # A refused request is counted by attempts rules only.
    refused = write(
        tmp_path / "refused.json", json.dumps({"redirect_uris": ["https://x.example/cb"]})
    )
    assert main(["explain", "-c", str(EXAMPLE), str(refused)]) == 1
    out = capsys.readouterr().out
    assert "limit:    per-ip (30/minute;600/hour per client_ip, counting attempts)" in out
    assert "per-vendor" not in out


# --- a reader that goes away -----------------------------------------------------------------


def _many_cases(folder: Path) -> Path:
    """A case file whose -v output is far larger than a pipe's buffer, so that writing it
    to a closed pipe certainly fails."""
    cases = "".join(
        f"  - name: case {i} {'x' * 200}\n"
        "    request: {redirect_uris: ['https://app.example.com/cb']}\n"
        "    expect: {decision: allowed, rule: allow.custom}\n"
        for i in range(3000)
    )
    return write(
        folder / "many.yaml",
        "policy: {version: 1, redirect_uris: {allow: ['https://app.example.com/cb']}}\n"
        f"cases:\n{cases}",
    )


def _closed_after_one_line(argv: list[str]) -> tuple[int, bytes]:
    import os
    import subprocess
    import sys

    command = subprocess.Popen(
        [sys.executable, "-m", "gateway", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert command.stdout is not None
    command.stdout.readline()  # like head -1: read one line, then close the pipe
    command.stdout.close()
    _, err = command.communicate(timeout=120)
    return command.returncode, err


def test_a_closed_pipe_ends_quietly(tmp_path):
    """``dcr-gateway test-policy -v ... | head -1``: no traceback, no "Exception ignored"
    at exit, and the status a shell reports for SIGPIPE."""
    code, err = _closed_after_one_line(["test-policy", "-v", str(_many_cases(tmp_path))])
    assert err == b""
    assert code == 141


@pytest.mark.parametrize(
    "argv",
    [
        [
            "explain",
            "--policy",
            str(ROOT / "policies" / "default.yaml"),
            str(ROOT / "examples" / "request.json"),
        ],
        ["check", "--policy", str(ROOT / "policies" / "default.yaml")],
        ["--help"],
    ],
    ids=["explain", "check", "help"],
)
def test_every_subcommand_survives_a_closed_pipe(argv):
    code, err = _closed_after_one_line(argv)
    assert b"Traceback" not in err
    assert b"Exception ignored" not in err
    assert code in (0, 141)


def test_explain_shows_a_report_only_refusal_as_would_deny(tmp_path, capsys):
    write(
        tmp_path / "policy.yaml",
        "version: 1\nredirect_uris:\n  managed_list: none\n  report_only: true\n",
    )
    config = write(
        tmp_path / "config.yaml",
        "upstream: {url: 'http://127.0.0.1:1'}\npolicy_file: policy.yaml\n",
    )
    request = write(tmp_path / "r.json", json.dumps({"redirect_uris": ["https://x.example/cb"]}))
    assert main(["explain", "-c", str(config), str(request)]) == 0  # it would be forwarded
    out = capsys.readouterr().out
    assert "decision: would_deny" in out
    assert "rule:     redirect_uri.not_allowed" in out
    assert "report:   would_deny: report_only (redirect_uris)" in out
    assert main(["explain", "-c", str(config), str(request), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["decision"], result["rule"]) == ("would_deny", "redirect_uri.not_allowed")
    assert result["report_only_group"] == "redirect_uris"
    assert result["forwarded"]["redirect_uris"] == ["https://x.example/cb"]
