"""What the subcommands share: exit codes, the config argument, loading with a report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config.load import LoadedConfig, load_config
from gateway.config.yamlsource import ConfigError, Document, Problem, load_file
from gateway.policy.model import Policy

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, a one-line help, its arguments, and what it runs."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, type=Path, help="the gateway's config file (YAML)"
    )


def source_arguments(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``-c CONFIG`` (a deployment: its policies, per tenant) or ``--policy FILE`` (one
    policy file, no deployment needed), one of the two."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-c", "--config", type=Path, help="the gateway's config file (YAML)")
    group.add_argument(
        "--policy",
        type=Path,
        action="append" if many else "store",
        metavar="FILE",
        help="a policy file, without a config" + (" (repeatable)" if many else ""),
    )


def report(exc: ConfigError) -> None:
    """Every problem, one per line, then a count (on stderr)."""
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)
    count = len(exc.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)


def load(path: Path) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        report(exc)
        return None


def load_policy_file(path: Path) -> tuple[Policy, Document] | None:
    """One policy file and its parsed document (for ``file:line`` of warnings); every
    problem reported, ``None`` when there are any."""
    from gateway.policy.loader import read_policy

    problems: list[Problem] = []
    document = load_file(path, problems)
    policy = None
    if document.data is not None or not problems:
        policy = read_policy(document, problems)
    if problems or policy is None:
        report(ConfigError(problems))
        return None
    return policy, document
