"""``dcr-gateway explain``: a policy file without a config, stdin, metadata documents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support.paths import ROOT

DEFAULT = ROOT / "policies" / "default.yaml"
EXAMPLES = ROOT / "examples"
CLAUDE = {"client_name": "claudeai", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def stdin(monkeypatch: pytest.MonkeyPatch, data: object) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(io.BytesIO(json.dumps(data).encode())))


def test_explain_with_a_policy_file(tmp_path, capsys):
    request = write(tmp_path / "r.json", CLAUDE)
    assert main(["explain", "--policy", str(DEFAULT), str(request)]) == 0
    out = capsys.readouterr().out
    assert "rule:     allow.managed" in out
    assert "limit:    per-ip" in out


def test_explain_reads_stdin(monkeypatch, capsys):
    stdin(monkeypatch, {"redirect_uris": ["https://evil.example/cb"]})
    assert main(["explain", "--policy", str(DEFAULT), "-"]) == 1
    assert "rule:     redirect_uri.not_allowed" in capsys.readouterr().out


def test_explain_reads_stdin_by_default(monkeypatch, capsys):
    stdin(monkeypatch, CLAUDE)
    assert main(["explain", "--policy", str(DEFAULT), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["judged_as"] == "registration"


def test_explain_refuses_a_broken_policy(tmp_path, capsys):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nmode: sometimes\n", encoding="utf-8")
    assert main(["explain", "--policy", str(policy), str(write(tmp_path / "r.json", {}))]) == 2
    assert "mode: must be one of" in capsys.readouterr().err


def test_tenant_needs_a_config(tmp_path, capsys):
    request = write(tmp_path / "r.json", CLAUDE)
    assert main(["explain", "--policy", str(DEFAULT), str(request), "--tenant", "x"]) == 2
    assert "--tenant needs -c CONFIG" in capsys.readouterr().err


def test_a_metadata_document_is_recognised_by_its_https_client_id(capsys):
    document = EXAMPLES / "cimd-document.json"
    assert main(["explain", "--policy", str(DEFAULT), str(document), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["judged_as"] == "client_id_metadata_document"
    assert result["client_id"] == "https://claude.ai/oauth/claude-code-client-metadata"
    assert result["rule"] == "allow.managed"
    assert result["vendor"] == "claude-code"
    assert "client_id" not in result["forwarded"]  # it describes the document


def test_cimd_url_names_the_url_it_was_fetched_from(capsys):
    document = str(EXAMPLES / "cimd-document.json")
    argv = ["explain", "--policy", str(DEFAULT), document, "--cimd-url"]
    # Not on the policy's list of document URLs.
    assert main([*argv, "https://app.example.com/meta.json"]) == 1
    assert "rule:     cimd.not_allowed" in capsys.readouterr().out
    # A URL a metadata document cannot have.
    assert main([*argv, "https://10.0.0.1/meta.json"]) == 1
    assert "rule:     cimd.invalid_url" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        (
            {"client_id": "https://claude.ai/oauth/claude-code-client-metadata"},
            "cimd.missing_field",
        ),
        (
            {
                "client_id": "https://claude.ai/oauth/claude-code-client-metadata",
                "client_name": "Claude Code",
                "redirect_uris": ["http://localhost/callback"],
                "client_secret": "s3cret",
            },
            "cimd.shared_secret",
        ),
        (
            {
                "client_id": "https://claude.ai/oauth/claude-code-client-metadata",
                "client_name": "Claude",  # Claude's own URI at Claude Code's document URL
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            },
            "cimd.identity_mismatch",
        ),
    ],
)
def test_metadata_documents_are_judged_like_fetched_ones(tmp_path, capsys, document, rule):
    path = write(tmp_path / "doc.json", document)
    assert main(["explain", "--policy", str(DEFAULT), str(path)]) == 1
    assert f"rule:     {rule}" in capsys.readouterr().out


def test_a_document_that_is_not_json(tmp_path, capsys):
    path = tmp_path / "doc.json"
    path.write_text('{"client_id": 1, "client_id": 2}', encoding="utf-8")
    url = "https://claude.ai/oauth/claude-code-client-metadata"
    assert main(["explain", "--policy", str(DEFAULT), str(path), "--cimd-url", url]) == 1
    assert "rule:     cimd.fetch.not_json" in capsys.readouterr().out


def test_with_a_config_whose_cimd_is_off_the_decision_is_cimd_disabled(capsys):
    document = str(EXAMPLES / "cimd-document.json")
    assert main(["explain", "-c", str(ROOT / "config.example.yaml"), document]) == 1
    out = capsys.readouterr().out
    assert "rule:     cimd.disabled" in out
    assert "with it on, the policy would decide allowed (allow.managed)" in out
