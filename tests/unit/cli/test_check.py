"""``dcr-gateway check``: a policy file without a config, and warnings (``--strict``)."""

from __future__ import annotations

from pathlib import Path

from gateway.cli import main
from tests.support.paths import ROOT

DEFAULT = ROOT / "policies" / "default.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_check_a_policy_without_a_config(capsys):
    assert main(["check", "--policy", str(DEFAULT)]) == 0
    captured = capsys.readouterr()
    assert f"policy ok: {DEFAULT} (mode allowlist;" in captured.out
    assert "  rate limit per-ip: 30/minute;600/hour per client_ip" in captured.out
    assert captured.err == ""


def test_check_several_policies(tmp_path, capsys):
    other = write(tmp_path / "open.yaml", "version: 1\nmode: open\n")
    assert main(["check", "--policy", str(DEFAULT), "--policy", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"policy ok: {other} (mode open;" in out


def test_check_a_broken_policy_lists_every_problem(tmp_path, capsys):
    policy = write(tmp_path / "p.yaml", "version: 1\nmode: sometimes\nredirect_uris:\n  blok: []\n")
    assert main(["check", "--policy", str(policy)]) == 1
    err = capsys.readouterr().err
    assert f"error: {policy}:2: mode: must be one of" in err
    assert f"error: {policy}:4: redirect_uris.blok: unknown key" in err
    assert "  hint: did you mean 'block'?" in err
    assert "2 problems found" in err


def test_check_needs_a_config_or_a_policy(capsys):
    try:
        main(["check"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "one of the arguments -c/--config --policy is required" in capsys.readouterr().err


WARNED = (
    "version: 1\nredirect_uris:\n  managed_list: none\n  loopback: deny\n  allow:\n"
    "    - https://app.example.com/oauth/*\n"
    "    - https://app.example.com/oauth/callback\n"
    "    - http://localhost/callback\n"
)


def test_warnings_do_not_fail_the_check(tmp_path, capsys):
    policy = write(tmp_path / "p.yaml", WARNED)
    assert main(["check", "--policy", str(policy)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {policy}:7: redirect_uris.allow[1]: pattern " in err
    assert "is shadowed" in err
    assert (
        f"warning: {policy}:8: redirect_uris.allow[2]: pattern 'http://localhost/callback' "
        "can never match" in err
    )
    assert err.strip().splitlines()[-1] == "2 warnings"


def test_strict_fails_on_warnings(tmp_path, capsys):
    policy = write(tmp_path / "p.yaml", WARNED)
    assert main(["check", "--policy", str(policy), "--strict"]) == 1
    assert main(["check", "--policy", str(DEFAULT), "--strict", "--today", "2026-12-01"]) == 0


def test_stale_managed_entries_against_an_injected_date(capsys):
    assert main(["check", "--policy", str(DEFAULT), "--today", "2028-01-01"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err
    assert "managed entry 'claude' was last verified on 2026-11-24, 403 days ago" in err
    assert main(["check", "--policy", str(DEFAULT), "--today", "2028-01-01", "--strict"]) == 1


def test_a_bad_today_is_a_usage_error(capsys):
    assert main(["check", "--policy", str(DEFAULT), "--today", "tomorrow"]) == 2
    assert "is not a date" in capsys.readouterr().err


def test_warnings_of_a_deployment_s_policies(tmp_path, capsys):
    write(tmp_path / "p.yaml", WARNED)
    config = write(
        tmp_path / "config.yaml", "upstream: {url: 'http://127.0.0.1:1'}\npolicy_file: p.yaml\n"
    )
    assert main(["check", "-c", str(config)]) == 0
    captured = capsys.readouterr()
    assert "config ok" in captured.out
    assert f"warning: {tmp_path / 'p.yaml'}:8: redirect_uris.allow[2]" in captured.err
