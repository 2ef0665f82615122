"""nnfuzz report: the runs of an output folder, its failures and a plot, at a glance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.targets import DEAD_RELU, write_target

from .support import assert_one_error_line, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """DEAD_RELU fuzzed twice into one folder: the first run finds the NaN, the second resumes."""
    folder = tmp_path_factory.mktemp("report")
    target = write_target(folder, DEAD_RELU)
    out = folder / "out"
    assert invoke("run", target, "--out", out, "--runs", 5000, "--seed", 1).exit_code == 1
    assert invoke("run", target, "--out", out, "--runs", 3000, "--seed", 2).exit_code == 0
    return target, out


def test_the_summary_names_both_runs_and_the_failure_with_a_replay_command_that_works(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    target, out = two_runs
    result = invoke("report", out, "--png", tmp_path / "plot.png", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "2 run(s), 8,000 execs" in result.output
    assert "1 new failure(s)" in result.output and "0 new failure(s)" in result.output
    (crash,) = sorted((out / "crashes").glob("*.safetensors"))
    assert "nonfinite:" in result.output and str(crash) in result.output
    replay_line = next(line for line in result.output.splitlines() if "replay:" in line)
    command = replay_line.split("replay: nnfuzz ", 1)[1].split()
    assert command == ["replay", str(target), str(crash)]
    assert invoke(*command).exit_code == 1, "the printed command replays the failure"
    record = json.loads((tmp_path / "r.json").read_text())
    assert [f["path"] for f in record["failures"]] == [str(crash)]
    assert record["failures"][0]["hits"] >= 1 and len(record["runs"]) == 2


def test_the_plot_is_a_png_and_the_folder_is_not_written_otherwise(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = two_runs
    before = sorted(p.name for p in out.rglob("*"))
    png = tmp_path / "plot.png"
    result = invoke("report", out, "--png", png)
    assert result.exit_code == 0 and f"plot: {png}" in result.output
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5_000
    assert sorted(p.name for p in out.rglob("*")) == before
    assert invoke("report", out, "--no-png").exit_code == 0
    assert not (out / "report.png").exists()


def test_without_matplotlib_the_summary_still_comes_and_an_asked_for_plot_is_one_error(
        two_runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out = two_runs
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and "nnfuzz[report]" in result.stderr
    assert not (out / "report.png").exists()
    assert_one_error_line(invoke("report", out, "--png", tmp_path / "p.png"), "matplotlib",
                          "nnfuzz[report]")


def test_a_folder_without_run_json_is_one_error(tmp_path: Path) -> None:
    assert_one_error_line(invoke("report", tmp_path), "not an nnfuzz output folder")


def test_a_reader_that_goes_away_ends_the_report_quietly(two_runs: tuple[Path, Path]) -> None:
    import os
    import subprocess

    _, out = two_runs
    reader, writer = os.pipe()
    os.close(reader)  # like `nnfuzz report OUT | head -1` once head has its line
    process = subprocess.run([sys.executable, "-m", "nnfuzz", "report", str(out), "--no-png"],
                             stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(writer)
    assert process.returncode == 141, process.stderr
    assert "internal error" not in process.stderr and "Traceback" not in process.stderr
