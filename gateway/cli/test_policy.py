"""``dcr-gateway test-policy PATH...``: run policy cases written as YAML (after ``opa test``).

Each PATH is a case file or a folder (every ``*.yaml``/``*.yml`` below it).  A broken case
or file is reported at its ``file:line`` and the run goes on with the rest; ``-k`` and
``--run`` select cases by name, ``--coverage`` lists the policy rules no case reaches, and
``--junit`` writes a JUnit XML report for CI.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command
from gateway.config.yamlsource import Problem

if TYPE_CHECKING:
    from gateway.policy.cases import Outcome


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="case files or folders of them"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.add_argument(
        "-k", dest="keyword", metavar="SUBSTRING", help="run only cases whose id contains this"
    )
    parser.add_argument(
        "--run", metavar="REGEX", help="run only cases whose id (file::name) matches this"
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="list the policy rule ids (gateway/rules.py) that no case's decision reaches",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")


@dataclass(slots=True)
class Report:
    """What a run found, per file, for the summary and the JUnit report."""

    files: dict[Path, list[Outcome]] = field(default_factory=dict)
    errors: dict[Path, list[Problem]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def test_policy(args: argparse.Namespace) -> int:
    from gateway.policy.cases import discover, read_case_file, run_case, uncovered

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        for path in missing:
            print(f"error: {path}: no such file or folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        pattern = re.compile(args.run) if args.run else None
    except re.error as exc:
        print(f"error: --run {args.run!r} is not a regular expression: {exc}", file=sys.stderr)
        return EXIT_USAGE
    files = list(discover(*args.paths))
    if not files:
        shown = ", ".join(str(p) for p in args.paths)
        print(f"error: no case files found in {shown} (*.yaml, *.yml)", file=sys.stderr)
        return EXIT_FAIL

    def selected(case_id: str) -> bool:
        if args.keyword is not None and args.keyword not in case_id:
            return False
        return pattern is None or pattern.search(case_id) is not None

    report = Report()
    passed = failed = errors = 0
    outcomes = []
    for path in files:
        read = read_case_file(path)
        report.files[path] = []
        if read.problems:
            errors += len(read.problems)
            report.errors[path] = read.problems
            for problem in read.problems:
                print(f"ERROR {problem}")
        for case in read.cases:
            if not selected(case.id):
                continue
            start = time.perf_counter()
            outcome = run_case(case)
            report.seconds[case.id] = time.perf_counter() - start
            report.files[path].append(outcome)
            outcomes.append(outcome)
            if outcome.passed:
                passed += 1
                if args.verbose:
                    print(f"PASS  {case.id}")
            else:
                failed += 1
                print(f"FAIL  {case.id} ({case.location})")
                for failure in outcome.failures:
                    print(f"      {failure}")
    if args.junit is not None:
        from gateway.cli.junit import write_junit

        write_junit(args.junit, report)
    if not outcomes and not errors:
        print("error: no cases match the selection (-k / --run)", file=sys.stderr)
        return EXIT_FAIL
    summary = f"{passed} passed, {failed} failed"
    if errors:
        summary += f", {errors} error{'s' if errors != 1 else ''}"
    print(summary)
    if args.coverage:
        from gateway.policy.cases import policy_rules

        missing_rules = uncovered(outcomes)
        total = len(policy_rules())
        print(f"coverage: {total - len(missing_rules)} of {total} policy rules exercised")
        for rule in missing_rules:
            print(f"  not exercised: {rule}")
    return EXIT_OK if failed == 0 and errors == 0 and passed > 0 else EXIT_FAIL


COMMAND = Command(
    "test-policy",
    "run policy test cases (YAML) from files or folders",
    _arguments,
    test_policy,
)
