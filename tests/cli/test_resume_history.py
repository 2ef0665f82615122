"""Resuming an output folder: totals add up, run.json keeps every run, and a folder
of another target (or an edited one) is never silently mixed in."""

from __future__ import annotations

import json
from pathlib import Path

from tests.targets import DEAD_RELU, HEALTHY, write_target

from .support import assert_one_error_line, invoke


def test_a_resumed_run_adds_its_executions_to_the_totals_and_keeps_a_history(
        healthy_target: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(2):
        result = invoke("run", healthy_target, "--out", out, "--runs", 700)
        assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert [run["execs"] for run in record["runs"]] == [700, 700]
    assert record["totals"]["execs"] == 1400 and record["totals"]["runs"] == 2
    assert all(run["stop_reason"] == "reached --runs" for run in record["runs"])
    last = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert last["execs"] == 1400, "stats.jsonl counts across runs"
    assert last["elapsed_s"] >= record["runs"][0]["elapsed_s"]


def test_an_edited_target_resumes_with_a_warning_that_says_so(tmp_path: Path) -> None:
    target = write_target(tmp_path, HEALTHY)
    out = tmp_path / "out"
    assert invoke("run", target, "--out", out, "--runs", 300).exit_code == 0
    target.write_text(target.read_text() + "\n# edited\n")
    result = invoke("run", target, "--out", out, "--runs", 300)
    assert result.exit_code == 0, result.output
    assert "WARNING: model.py changed since the last run" in result.stderr


def test_a_folder_of_another_target_is_refused_in_one_line(tmp_path: Path) -> None:
    first = write_target(tmp_path, HEALTHY, name="first.py")
    second = write_target(tmp_path, DEAD_RELU, name="second.py")
    out = tmp_path / "out"
    assert invoke("run", first, "--out", out, "--runs", 300).exit_code == 0
    result = invoke("run", second, "--out", out, "--runs", 300)
    assert_one_error_line(result, "holds runs of first.py, not second.py")


def test_run_reports_new_failures_as_json_and_junit_and_a_quiet_night_as_passing(
        dead_relu_target: Path, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ElementTree

    out, report, junit = tmp_path / "out", tmp_path / "run.json", tmp_path / "run.xml"
    first = invoke("run", dead_relu_target, "--out", out, "--runs", 20000, "--stop-on-failure",
                   "--json", report, "--junit", junit)
    assert first.exit_code == 1, first.output
    [failure] = json.loads(report.read_text())["new_failures"]
    assert failure["objective"] == "nonfinite" and Path(failure["path"]).exists()
    suite = ElementTree.parse(junit).getroot()
    # The campaign's case and the new failure's case both fail; the counts are their elements'.
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    assert sum(case.find("failure") is not None for case in suite) == 2
    second = invoke("run", dead_relu_target, "--out", out, "--runs", 500, "--json", report,
                    "--junit", junit)
    assert second.exit_code == 0, second.output
    assert json.loads(report.read_text())["new_failures"] == []
    suite = ElementTree.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")
    [campaign] = suite
    assert campaign.get("name") == "no new failures" and list(campaign) == []
