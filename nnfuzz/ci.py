"""Machine-readable results for CI systems: JSON, and JUnit XML.

``replay`` gives one test case per reproducer; ``run`` one per new failure,
plus one for the campaign that passes when it found nothing new.

JUnit XML is what CI systems (GitHub Actions reporters, GitLab, Jenkins) read to
show a failing test; a reproducer that still fails is a failing test case, one
that could not run is an errored one.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from nnfuzz.config import FuzzResult
from nnfuzz.replay import ReplayOutcome, Verdict
from nnfuzz.storage import atomic_write


def replay_summary(outcomes: list[ReplayOutcome]) -> dict[str, Any]:
    """The outcomes as JSON-ready data, with a count per verdict."""
    return {
        "counts": {verdict.value: sum(o.verdict is verdict for o in outcomes) for verdict in Verdict},
        "reproducers": [{"path": str(o.path), "verdict": o.verdict.value, "detail": o.detail,
                         "objective": o.objective, "signature": o.signature, "runs": o.runs,
                         "failed_runs": o.failed_runs} for o in outcomes],
    }


def replay_junit(outcomes: list[ReplayOutcome]) -> bytes:
    """A JUnit XML test suite: one test case per reproducer."""
    failing = {Verdict.STILL_FAILS, Verdict.FLAKY}
    suite = ElementTree.Element("testsuite", {"name": "nnfuzz replay"})
    for outcome in outcomes:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": f"nnfuzz.{outcome.objective or 'reproducer'}",
            "name": outcome.path.name,
            "file": str(outcome.path),
        })
        if outcome.verdict in failing:
            ElementTree.SubElement(case, "failure", {"message": outcome.verdict.value,
                                                     "type": outcome.signature}).text = outcome.detail
        elif outcome.verdict is Verdict.ERROR:
            ElementTree.SubElement(case, "error", {"message": "could not replay"}).text = outcome.detail
    return _counted(suite)


def run_summary(result: FuzzResult) -> dict[str, Any]:
    """A run's outcome as JSON-ready data: why it stopped, its counters, its new failures."""
    return {
        "stop_reason": result.stop_reason.describe(),
        "execs": result.execs,
        "elapsed_s": round(result.elapsed_s, 3),
        "corpus": result.corpus,
        "coverage": result.coverage,
        "threshold": result.threshold,
        "hits": result.hits,
        "new_failures": [{"objective": f.objective, "signature": f.signature, "detail": f.detail,
                          "path": str(f.path) if f.path else None} for f in result.failures],
    }


def run_junit(result: FuzzResult) -> bytes:
    """A JUnit XML test suite: a failing test case per new failure, and the campaign."""
    suite = ElementTree.Element("testsuite", {"name": "nnfuzz run"})
    campaign = ElementTree.SubElement(suite, "testcase", {
        "classname": "nnfuzz.run", "name": "no new failures", "time": f"{result.elapsed_s:.3f}"})
    if result.failures:
        ElementTree.SubElement(campaign, "failure", {"message": f"{len(result.failures)} new"}).text = \
            "\n".join(f.describe() for f in result.failures)
    for failure in result.failures:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": f"nnfuzz.{failure.objective}", "name": failure.signature,
            "file": str(failure.path) if failure.path else ""})
        ElementTree.SubElement(case, "failure", {"message": failure.objective,
                                                 "type": failure.signature}).text = failure.describe()
    return _counted(suite)


def _counted(suite: ElementTree.Element) -> bytes:
    """The suite's counts taken from its test cases, so that they always agree: a test case
    with a failure (or error) element counts once."""
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    suite.set("errors", str(sum(case.find("error") is not None for case in cases)))
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)


def write_json(path: Path, record: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())


def write_junit(path: Path, xml: bytes) -> None:
    atomic_write(path, xml)
