"""``dcr-gateway test-policy DIR``: run policy cases written as YAML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command
from gateway.config.yamlsource import ConfigError


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="a folder of *.yaml case files")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")


def test_policy(args: argparse.Namespace) -> int:
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


COMMAND = Command(
    "test-policy", "run policy test cases (YAML) from a folder", _arguments, test_policy
)
