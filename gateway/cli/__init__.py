"""The ``dcr-gateway`` command: ``run``, ``check``, ``explain``, ``test-policy``, ``diff``,
``hash-token``, ``clients``.

Each subcommand is a module with one :class:`~gateway.cli.common.Command`; adding one is a
new module and an entry in :data:`COMMANDS`, nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    check,
    clients,
    diff,
    explain,
    hash_token,
    registry_key,
    run,
    test_policy,
)
from gateway.cli.common import Command

COMMANDS: tuple[Command, ...] = (
    run.COMMAND,
    check.COMMAND,
    explain.COMMAND,
    test_policy.COMMAND,
    diff.COMMAND,
    hash_token.COMMAND,
    registry_key.COMMAND,
    clients.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcr-gateway",
        description="Guard OAuth dynamic client registration in front of an authorization server.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sp = sub.add_parser(command.name, help=command.help, description=command.help)
        command.arguments(sp)
        sp.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
