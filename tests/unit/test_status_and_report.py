"""What a user looks at (issue #24, item 9): the progress bar's fraction and time left, the
DONE line of a resumed run, the report's plot of a short run and the status of a killed run."""

from __future__ import annotations

import io
import json
from pathlib import Path

from nnfuzz.output import OutputFolder
from nnfuzz.report import figure_of, read_folder, summary
from nnfuzz.status import Snapshot, TerminalReporter


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in a shell."""

    def isatty(self) -> bool:
        return True


def snapshot(**fields: float) -> Snapshot:
    values = dict(elapsed_s=5.0, execs=500, execs_per_s=100.0, corpus=10, coverage=10, failures=0)
    return Snapshot(**{**values, **fields})  # type: ignore[arg-type]


def test_the_bar_shows_the_fraction_of_runs_done() -> None:
    screen = Terminal()
    reporter = TerminalReporter(screen, total_runs=1000)
    reporter.status(snapshot(run_execs=500, execs=1500))  # 1,000 more came from earlier runs
    assert " 50%|" in screen.getvalue() and "500/1000" in screen.getvalue()


def test_the_bar_shows_the_fraction_of_max_time_and_the_time_left() -> None:
    screen = Terminal()
    reporter = TerminalReporter(screen, max_time=10.0)
    reporter.status(snapshot(run_elapsed_s=5.0, run_execs=4321))
    shown = screen.getvalue()
    assert " 50%|" in shown and "5/10s" in shown and "left" in shown and "#4321" in shown


def test_the_done_line_of_a_resumed_run_gives_this_runs_seconds_beside_the_total() -> None:
    assert "elapsed: 130s (this run 10s)" in snapshot(elapsed_s=130, run=2, run_elapsed_s=10).line()
    assert "this run" not in snapshot(elapsed_s=130, run=1, run_elapsed_s=130).line()


def folder_of_one_run(path: Path, stop_reason: str) -> Path:
    path.mkdir()
    run = {"target": "model.py", "stop_reason": stop_reason, "execs": 100, "elapsed_s": 1.0,
           "totals": {"execs": 100, "elapsed_s": 1.0}}
    (path / "run.json").write_text(json.dumps(run))
    record = dict(elapsed_s=1.0, execs=100, execs_per_s=100.0, corpus=12, coverage=12,
                  failures=1, saved_failures=1, run=1)
    (path / "stats.jsonl").write_text(json.dumps(record) + "\n")
    return path


def test_a_run_whose_process_is_gone_is_reported_killed_and_a_live_one_running(
        tmp_path: Path) -> None:
    out = folder_of_one_run(tmp_path / "out", "running")
    (out / ".lock").write_text("12345")  # left by a run killed with SIGKILL: nobody holds it
    [line] = [line for line in summary(read_folder(out)) if line.startswith("  1.")]
    assert "killed (its process is gone" in line
    held = OutputFolder(out)  # a live run
    try:
        [line] = [line for line in summary(read_folder(out)) if line.startswith("  1.")]
    finally:
        held.close()
    assert "running (pid " in line and "killed" not in line


def test_the_plot_of_a_one_record_run_shows_points_and_whole_failure_ticks(tmp_path: Path) -> None:
    figure = figure_of(read_folder(folder_of_one_run(tmp_path / "out", "reached --runs")))
    top, bottom = figure.axes
    assert all(line.get_marker() not in (None, "None", "") for line in top.lines)
    assert any(line.get_marker() == "o" for line in bottom.lines)
    ticks = [tick for tick in bottom.get_yticks() if bottom.get_ylim()[0] <= tick <= bottom.get_ylim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
