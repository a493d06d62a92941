"""The Dockerfile's health check asks the gateway's own ``healthcheck`` subcommand with
the config the image runs, so it follows the configured port."""

from __future__ import annotations

import json
import re

from gateway.cli import build_parser
from tests.support.paths import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def exec_form(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction}\s+(\[.*\])\s*$", DOCKERFILE, re.M)
    assert match is not None, instruction
    return list(json.loads(match.group(1)))


def test_the_health_check_reads_the_config_the_image_runs() -> None:
    match = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])", DOCKERFILE, re.M)
    assert match is not None
    check = json.loads(match.group(1))
    run = exec_form("CMD")
    assert check[0] == exec_form("ENTRYPOINT")[0] == "dcr-gateway"
    assert check[1] == "healthcheck"
    assert check[check.index("-c") + 1] == run[run.index("-c") + 1]
    assert "8080" not in " ".join(check)
    args = build_parser().parse_args(check[1:])  # a command line the CLI accepts
    assert args.command == "healthcheck"
