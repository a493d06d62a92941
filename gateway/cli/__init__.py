"""The ``dcr-gateway`` command: ``run``, ``check``, ``explain``, ``test-policy``, ``diff``,
``hash-token``, ``clients``, ``healthcheck``.

Each subcommand is a module with one :class:`~gateway.cli.common.Command`; adding one is a
new module and an entry in :data:`COMMANDS`, nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    check,
    clients,
    diff,
    explain,
    hash_token,
    healthcheck,
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
    healthcheck.COMMAND,
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


#: The exit status of a command whose reader went away (128 + SIGPIPE), as shells report it.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand.  When the reader of its output goes away (``| head -1``), it
    stops quietly: no traceback, and no second error when Python flushes stdout at exit."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush has nowhere to fail
    (the recipe of the Python documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured in tests)
        pass
