"""A JUnit XML report of a ``test-policy`` run, the format CI systems read.

One ``<testsuite>`` per case file, one ``<testcase>`` per case (``classname`` the file's
stem, ``file`` and ``line`` where the case is written); a failed case carries a
``<failure>`` listing what differed, a broken case or file an ``<error>``.  Written with
:mod:`xml.etree.ElementTree`, so every message is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.cli.test_policy import Report


def write_junit(path: Path, report: Report) -> None:
    root = ET.Element("testsuites", name="dcr-gateway test-policy")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    elapsed = 0.0
    for file, outcomes in report.files.items():
        problems = report.errors.get(file, [])
        suite = ET.SubElement(root, "testsuite", name=str(file))
        failures = 0
        suite_time = 0.0
        for outcome in outcomes:
            case = outcome.case
            seconds = report.seconds.get(case.id, 0.0)
            suite_time += seconds
            attributes = {"classname": file.stem, "name": case.name, "file": str(file)}
            if case.line is not None:
                attributes["line"] = str(case.line)
            attributes["time"] = f"{seconds:.6f}"
            element = ET.SubElement(suite, "testcase", attributes)
            if not outcome.passed:
                failures += 1
                failure = ET.SubElement(element, "failure", message=outcome.failures[0])
                failure.set("type", "expectation")
                failure.text = "\n".join(outcome.failures)
        for problem in problems:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=file.stem,
                name=f"{problem.location or file}: {problem.path}",
                file=str(file),
                time="0",
            )
            error = ET.SubElement(element, "error", message=problem.message, type="broken")
            error.text = str(problem)
        counts = {
            "tests": len(outcomes) + len(problems),
            "failures": failures,
            "errors": len(problems),
        }
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.6f}")
        elapsed += suite_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{elapsed:.6f}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
