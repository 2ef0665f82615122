"""JUnit and JSON results: the counts a CI system shows agree with the elements under them."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.config import FuzzResult, StopReason
from nnfuzz.replay import ReplayOutcome, Verdict
from nnfuzz.reproducer import Failure
from nnfuzz.ci import replay_junit, replay_summary, run_junit


def _failure(index: int) -> Failure:
    value = torch.tensor([float(index)])
    return Failure(inputs=(value,), seed=(value,), objective="nonfinite",
                   detail=f"NaN #{index}", signature=f"nonfinite:{index}")


def _elements(suite: ElementTree.Element, tag: str) -> int:
    return sum(case.find(tag) is not None for case in suite.findall("testcase"))


def _agrees(suite: ElementTree.Element) -> bool:
    return (int(suite.get("tests")) == len(suite.findall("testcase"))
            and int(suite.get("failures")) == _elements(suite, "failure")
            and int(suite.get("errors")) == _elements(suite, "error"))


@given(st.integers(min_value=0, max_value=6))
@settings(max_examples=20, deadline=None)
def test_run_junit_counts_one_failing_case_per_failure_element(new_failures: int) -> None:
    result = FuzzResult(failures=[_failure(i) for i in range(new_failures)], execs=100,
                        elapsed_s=1.0, corpus=3, coverage=3, threshold=0.1,
                        stop_reason=StopReason.RUNS)
    suite = ElementTree.fromstring(run_junit(result))
    assert _agrees(suite)
    # The campaign's own case fails too when anything new was found.
    assert int(suite.get("failures")) == (new_failures + 1 if new_failures else 0)


@given(st.lists(st.sampled_from(list(Verdict)), max_size=8))
@settings(max_examples=30, deadline=None)
def test_replay_junit_and_json_counts_agree_with_their_elements(verdicts: list[Verdict]) -> None:
    outcomes = [ReplayOutcome(path=Path(f"crashes/{i}.safetensors"), verdict=verdict, detail="d",
                              objective="nonfinite", signature=f"s{i}")
                for i, verdict in enumerate(verdicts)]
    suite = ElementTree.fromstring(replay_junit(outcomes))
    assert _agrees(suite)
    assert int(suite.get("failures")) == sum(v in {Verdict.STILL_FAILS, Verdict.FLAKY}
                                             for v in verdicts)
    record = replay_summary(outcomes)
    assert sum(record["counts"].values()) == len(record["reproducers"])
    for verdict, count in record["counts"].items():
        assert count == sum(r["verdict"] == verdict for r in record["reproducers"])
