"""``nnfuzz report OUT``: what the runs in an output folder did, for a person.

Reads run.json, stats.jsonl, replays.json and crashes/ (never writes into the folder
except the plots a user asks for) and gives a summary: the runs, the totals, the nights
(``nnfuzz.history``), each failure by signature with its replay command, and PNGs of
coverage and failures over time and of failures found and fixed night by night, so that a
nightly job's history is looked at, not read. matplotlib draws the plots; it is an
optional extra (``nnfuzz[report]``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nnfuzz.errors import OutputError, UsageError
from nnfuzz.history import Night, moment, nights, parse_since, read_replays, table
from nnfuzz.history import figure_of as nights_figure
from nnfuzz.output import holder_of, reproducers_in
from nnfuzz.reproducer import Failure, replay_command
from nnfuzz.run_record import RUNNING, RunEntry, RunRecord, read_run_json, runs_of
from nnfuzz.storage import atomic_write

#: What to install for plots.
PLOT_EXTRA = "pip install 'nnfuzz[report]'  (matplotlib)"


@dataclass
class SavedFailure:
    path: Path
    failure: Failure | None
    #: Why the file could not be read, when it could not.
    problem: str = ""


@dataclass
class FolderReport:
    folder: Path
    run: RunRecord
    stats: list[dict[str, Any]]
    failures: list[SavedFailure]
    #: The pid of the live run holding the folder, if one does.
    holder: str | None = None
    #: Every replay's verdicts on the folder's reproducers (replays.json).
    replays: tuple[dict[str, Any], ...] = ()
    #: --since: only the runs and replays from then on are reported.
    since: datetime | None = None

    @property
    def totals(self) -> dict[str, Any]:
        return self.run.get("totals") or {}

    @property
    def runs(self) -> list[RunEntry]:
        """Each run as run.json records it, but a run it says is running is only running
        while a live process holds the folder (the last run); else it was killed."""
        runs = runs_of(self.run)
        return [_with_status(each, live=self.holder if number == len(runs) else None)
                for number, each in enumerate(runs, 1)]

    @property
    def shown_runs(self) -> list[tuple[int, RunEntry]]:
        """The runs since --since (all without it), each with its number in the folder."""
        return [(number, run) for number, run in enumerate(self.runs, 1)
                if self.since is None or _started_since(run, self.since)]

    @property
    def nights(self) -> list[Night]:
        return nights(runs_of(self.run), list(self.replays), self.since)


def _started_since(run: RunEntry, since: datetime) -> bool:
    when = moment(run.get("start_time"))
    return when is not None and when >= since


def _with_status(run: RunEntry, live: str | None) -> RunEntry:
    if run.get("stop_reason") != RUNNING:
        return run
    status = (f"{RUNNING} (pid {live})" if live is not None else
              "killed (its process is gone; the same command resumes it)")
    return {**run, "stop_reason": status}


def read_folder(folder: Path, since: str | None = None) -> FolderReport:
    """Everything the report needs from an output folder, from ``since`` (--since) on; a
    folder without run.json, or a ``since`` that is not a date, is an error."""
    start = parse_since(since)
    run_json = folder / "run.json"
    if not run_json.is_file():
        raise UsageError(f"{folder} is not an nnfuzz output folder (no run.json): give the "
                         "--out folder of a run.")
    try:
        run = read_run_json(run_json)
    except (OSError, ValueError) as error:
        raise OutputError(f"{run_json} is unreadable ({error}): run nnfuzz again with this "
                          "--out to rewrite it.") from None
    return FolderReport(folder, run, _read_stats(folder / "stats.jsonl"),
                        _read_failures(folder / "crashes"), holder_of(folder),
                        tuple(read_replays(folder)), start)


def _read_stats(path: Path) -> list[dict[str, Any]]:
    """The records of stats.jsonl; a line a killed run left half-written is passed over."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _read_failures(crashes: Path) -> list[SavedFailure]:
    return [SavedFailure(path, failure, error) if failure is None else SavedFailure(path, failure)
            for path, failure, error in reproducers_in(crashes)]


def _replay(report: FolderReport, path: Path) -> str:
    return replay_command(report.run.get("target") or "TARGET.py", path)


def summary(report: FolderReport) -> list[str]:
    """The report as lines of text."""
    totals, run = report.totals, report.run
    lines = [f"nnfuzz report: {report.folder}",
             f"target: {run.get('target') or '?'} (sha256 {str(run.get('target_sha256', ''))[:12]})",
             f"totals: {len(report.runs)} run(s), {int(totals.get('execs', 0)):,} execs in "
             f"{float(totals.get('elapsed_s', 0)):.1f}s, corpus {totals.get('corpus', '?')}, "
             f"coverage {totals.get('coverage', '?')}, threshold {run.get('threshold', '?')}",
             _runs_heading(report)]
    for number, each in report.shown_runs:
        lines.append(f"  {number}. {each.get('start_time', '?')}  seed {each.get('run_seed', '?')}  "
                     f"{int(each.get('execs', 0)):,} execs  {float(each.get('elapsed_s', 0)):.1f}s  "
                     f"{each.get('new_failures', 0)} new failure(s)  {each.get('stop_reason', '?')}")
    lines += table(report.nights)
    hits = totals.get("hits") or {}
    lines.append(f"failures: {len(report.failures)} saved in {report.folder / 'crashes'}")
    for saved in report.failures:
        if saved.failure is None:
            lines.append(f"  unreadable: {saved.problem}")
            continue
        failure = saved.failure
        lines.append(f"  {failure.signature}  (hit {hits.get(failure.signature, '?')} time(s))")
        lines.append(f"    {failure.describe()}")
        lines.append(f"    replay: {_replay(report, saved.path)}")
    return lines


def _runs_heading(report: FolderReport) -> str:
    if report.since is None:
        return "runs:"
    return f"runs since {report.since.isoformat()}: {len(report.shown_runs)} of {len(report.runs)}"


def record(report: FolderReport) -> dict[str, Any]:
    """The report as JSON-ready data (``--json``)."""
    hits = report.totals.get("hits") or {}
    return {
        "folder": str(report.folder), "target": report.run.get("target"),
        "since": report.since.isoformat() if report.since else None,
        "totals": report.totals,
        "runs": [{"number": number, **run} for number, run in report.shown_runs],
        "nights": [night.record() for night in report.nights],
        "failures": [{"path": str(s.path), "problem": s.problem} if s.failure is None else
                     {"path": str(s.path), "objective": s.failure.objective,
                      "signature": s.failure.signature, "detail": s.failure.detail,
                      "hits": hits.get(s.failure.signature),
                      "replay": _replay(report, s.path)}
                     for s in report.failures],
    }


def pyplot() -> Any:
    """matplotlib.pyplot, drawing to files only; an error naming the extra when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(f"plots need matplotlib, which is not installed: {PLOT_EXTRA}") from None
    return plt


def png_bytes(figure: Any) -> bytes:
    """The figure as PNG bytes, and closed (pyplot keeps every open figure alive)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot().close(figure)
    return buffer.getvalue()


def plot(report: FolderReport, png: Path) -> Path:
    """Coverage and corpus (top) and failures saved (bottom) against seconds fuzzed."""
    atomic_write(png, png_bytes(figure_of(report)))
    return png


def plots(report: FolderReport, png: Path) -> list[Path]:
    """:func:`plot` at ``png``, and the nights' failures found and fixed beside it
    (``report.png`` -> ``report-nights.png``)."""
    first = plot(report, png)
    beside = png.with_name(f"{png.stem}-nights{png.suffix or '.png'}")
    figure = nights_figure(report.nights, str(report.run.get("target") or report.folder), pyplot())
    atomic_write(beside, png_bytes(figure))
    return [first, beside]


def figure_of(report: FolderReport) -> Any:
    """The report's figure (see :func:`plot`)."""
    plt = pyplot()
    import matplotlib.ticker

    stats = report.stats
    seconds = [float(r.get("elapsed_s", 0)) for r in stats]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5))
    # Points as well as lines: a short run has one record, which a line alone does not show.
    top.plot(seconds, [r.get("coverage", 0) for r in stats], label="coverage", marker="o",
             markersize=3)
    top.plot(seconds, [r.get("corpus", 0) for r in stats], label="corpus", linestyle="--",
             marker="s", markersize=3)
    top.set_ylabel("inputs")
    top.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # counts
    top.legend(loc="lower right")
    saved = _failures_saved(stats)
    bottom.step([0.0, *seconds], [0, *saved], where="post", color="tab:red")
    bottom.plot(seconds, saved, linestyle="none", marker="o", markersize=3, color="tab:red")
    bottom.set_ylabel("failures saved")
    # Whole failures only: at least 0..1, so that the locator has no fraction to place.
    bottom.set_ylim(0, max(1, *saved, 0) + 0.5)
    bottom.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    bottom.set_xlabel("seconds fuzzed (all runs)")
    for start in _run_starts(stats):
        for axis in (top, bottom):
            axis.axvline(start, color="grey", linewidth=0.8, linestyle=":")
    top.set_title(f"{report.run.get('target') or report.folder}: {len(report.runs)} run(s)")
    figure.tight_layout()
    return figure


def _failures_saved(stats: list[dict[str, Any]]) -> list[int]:
    """Failures in the folder at each record (older stats files only count each run's new ones)."""
    return [int(r.get("saved_failures", r.get("failures", 0))) for r in stats]


def _run_starts(stats: list[dict[str, Any]]) -> list[float]:
    """Seconds fuzzed when each resumed run began: the last record of the run before it."""
    return [float(before.get("elapsed_s", 0)) for before, after in zip(stats, stats[1:])
            if "run" in after and before.get("run") != after.get("run")]
