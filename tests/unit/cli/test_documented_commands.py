"""The commands the quick start tells people to try (README.md and scripts/quickstart) run,
with the files the repository ships, and succeed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

_COMMAND_RE = re.compile(r"^\s*\.venv/bin/dcr-gateway (.+)$", re.MULTILINE)


def _documented() -> list[tuple[str, str]]:
    out = []
    for name in ("README.md", "scripts/quickstart"):
        text = (ROOT / name).read_text(encoding="utf-8")
        out += [(name, match.group(1).strip()) for match in _COMMAND_RE.finditer(text)]
    return out


DOCUMENTED = _documented()


def test_the_quick_start_names_explain_and_its_examples() -> None:
    for name in ("README.md", "scripts/quickstart"):
        commands = [c for n, c in DOCUMENTED if n == name]
        assert "explain --policy policies/default.yaml examples/request.json" in commands, name
        assert "explain --policy policies/default.yaml examples/cimd-document.json" in commands
    assert (ROOT / "examples" / "request.json").is_file()
    assert (ROOT / "examples" / "cimd-document.json").is_file()


@pytest.mark.parametrize(("source", "command"), DOCUMENTED, ids=[c for _, c in DOCUMENTED])
def test_a_documented_command_works(source: str, command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *shlex.split(command)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{source}: {command}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
