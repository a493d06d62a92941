"""The ``dcr-gateway`` command: ``run``, ``check``, ``explain``, ``test-policy``.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a one-line help, a
function that adds its arguments, and a function that runs it and returns the exit code.
Adding one is a new entry, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway import __version__
from gateway.audit import configure_logging, log
from gateway.config import LoadedConfig, load_config
from gateway.yamlsource import ConfigError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, type=Path, help="the gateway's config file (YAML)"
    )


def _load(path: Path) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.discovery import DiscoveryError

    configure_logging()
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_FAIL
    settings = loaded.settings
    configure_logging(settings.log_level)
    app = create_app(settings, loaded.policy)
    log().info(
        "starting",
        listen=f"http://{settings.listen.host}:{settings.listen.port}",
        public_url=str(settings.public_url),
        upstream=str(settings.upstream.url),
        policy=loaded.policy.source,
        mode=loaded.policy.mode.value,
        version=__version__,
    )
    try:
        web.run_app(
            app,
            host=settings.listen.host,
            port=settings.listen.port,
            access_log=None,
            print=None,
            shutdown_timeout=10.0,
        )
    except DiscoveryError as exc:
        log().error("startup_failed", reason=str(exc))
        return EXIT_FAIL
    except OSError as exc:
        log().error("startup_failed", reason=str(exc))
        return EXIT_FAIL
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_FAIL
    policy = loaded.policy
    rp = policy.redirect_uris
    print(f"config ok: {args.config}")
    print(
        f"policy ok: {policy.source} (mode {policy.mode.value}; managed entries "
        f"{len(rp.managed_ids)}; allow/managed patterns {len(rp.allowed)}; "
        f"block patterns {len(rp.blocked)}; loopback {rp.loopback.name.lower()})"
    )
    return EXIT_OK


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("request", type=Path, help="a registration request body (JSON)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")


def _explain(args: argparse.Namespace) -> int:
    from gateway.policy.cases import describe, evaluate

    loaded = _load(args.config)
    if loaded is None:
        return EXIT_USAGE
    try:
        body = args.request.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.request}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    decision = evaluate(loaded.policy, None, body)
    if args.json:
        print(
            json.dumps(
                {
                    "decision": "allowed" if decision.allowed else "denied",
                    "rule": decision.rule,
                    "error": decision.error.error if decision.error else None,
                    "status": decision.error.status if decision.error else None,
                    "description": decision.description,
                    "matched": list(decision.matched),
                    "vendor": decision.vendor,
                    "dropped_redirect_uris": list(decision.dropped_redirect_uris),
                    "notes": list(decision.notes),
                    "forwarded": decision.metadata if decision.allowed else None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(describe(decision))
    return EXIT_OK if decision.allowed else EXIT_FAIL


def _test_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="a folder of *.yaml case files")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")


def _test_policy(args: argparse.Namespace) -> int:
    from gateway.policy.cases import discover, load_cases, run_case

    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    passed = failed = 0
    for path in discover(args.directory):
        try:
            cases = load_cases(path)
        except ConfigError as exc:
            failed += 1
            print(f"ERROR {path}:\n  " + "\n  ".join(str(p) for p in exc.problems))
            continue
        for case in cases:
            outcome = run_case(case)
            if outcome.passed:
                passed += 1
                if args.verbose:
                    print(f"PASS  {case.id}")
            else:
                failed += 1
                print(f"FAIL  {case.id}")
                for failure in outcome.failures:
                    print(f"      {failure}")
    print(f"{passed} passed, {failed} failed")
    return EXIT_OK if failed == 0 and passed > 0 else EXIT_FAIL


COMMANDS: tuple[Command, ...] = (
    Command("run", "serve: proxy to the upstream, guard registration", _config_argument, _run),
    Command(
        "check", "validate the config and its policy; list every problem", _config_argument, _check
    ),
    Command(
        "explain", "show the decision for one registration request", _explain_arguments, _explain
    ),
    Command(
        "test-policy",
        "run policy test cases (YAML) from a folder",
        _test_policy_arguments,
        _test_policy,
    ),
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
