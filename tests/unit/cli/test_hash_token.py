"""``dcr-gateway hash-token``: the SHA-256 a policy lists for an initial access token.

The token comes on standard input, never as an argument (it would stay in the shell's
history and the process list), and only its hash is printed: what the command prints is
what goes into a policy file that may be public.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys

import pytest

from gateway.cli import build_parser, main
from gateway.policy.loader import policy_from_mapping
from gateway.tokens.secrets import bearer_token
from tests.support.paths import ROOT

TOKEN = "itest-cli-token-3f9a"


def hex_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run(monkeypatch, capsys, stdin: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["hash-token", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "stdin",
    [TOKEN + "\n", TOKEN, TOKEN + "\r\n", TOKEN + "\nsecond line\n"],
    ids=["newline", "no-newline", "crlf", "first-line-only"],
)
def test_prints_the_sha256_of_the_token_on_stdin(monkeypatch, capsys, stdin):
    """``echo "$TOKEN" | dcr-gateway hash-token``: one line, the hex digest; the line end
    (``\\n`` or ``\\r\\n``) is not part of the token."""
    code, out, err = run(monkeypatch, capsys, stdin)
    assert code == 0
    assert out == hex_sha256(TOKEN) + "\n"
    assert TOKEN not in out + err


@pytest.mark.parametrize("stdin", ["", "\n", "   \n", "\r\n"])
def test_no_token_is_a_usage_error(monkeypatch, capsys, stdin):
    """Hashing nothing would print a hash that matches no token anyone holds."""
    code, out, err = run(monkeypatch, capsys, stdin)
    assert code == 2
    assert out == ""
    assert "no token on standard input" in err


def test_on_a_terminal_the_token_is_read_without_echo(monkeypatch, capsys):
    """Typed at a terminal, the token is read with ``getpass`` (not echoed)."""
    prompts = []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return TOKEN

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["hash-token"]) == 0
    captured = capsys.readouterr()
    assert prompts == ["token: "]
    assert captured.out == hex_sha256(TOKEN) + "\n"
    assert TOKEN not in captured.out + captured.err


def test_the_token_cannot_be_given_as_an_argument(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["hash-token", TOKEN])
    assert caught.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_generate_makes_a_usable_token_and_its_hash(monkeypatch, capsys):
    """``--generate`` prints a new token (with the prefix secret scanners know) and its
    hash; the token is a valid bearer credential, the hash is the one a policy accepts."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not read
    tokens = []
    for _ in range(2):
        assert main(["hash-token", "--generate"]) == 0
        out = capsys.readouterr().out
        match = re.fullmatch(r"token:  (dcrg_[A-Za-z0-9_-]{43})\nsha256: ([0-9a-f]{64})\n", out)
        assert match, out
        token, digest = match.groups()
        assert digest == hex_sha256(token)
        assert bearer_token([f"Bearer {token}"]) == token
        tokens.append(token)
    assert tokens[0] != tokens[1]

    policy = policy_from_mapping(
        {"version": 1, "initial_access_tokens": {"tokens": [{"name": "cli", "sha256": digest}]}}
    )
    assert policy.initial_access_tokens.tokens[0].digest == hashlib.sha256(token.encode()).digest()


def test_the_installed_command_reads_stdin():
    """The real entry point, in a process of its own, with the token on a pipe."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "hash-token"],
        input=TOKEN + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == hex_sha256(TOKEN) + "\n"
    assert TOKEN not in result.stdout + result.stderr
