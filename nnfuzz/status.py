"""What a run tells its user while it goes: status lines, new failures, the end.

The library reports through a :class:`Reporter`; the default says nothing,
so that ``nnfuzz.fuzz`` is quiet in tests. The CLI uses
:class:`TerminalReporter`: libFuzzer-style lines on stderr, or a progress
bar when stderr is a terminal.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from nnfuzz.reproducer import Failure


@dataclass(frozen=True)
class Snapshot:
    """A run's counters at one moment: one line of stats.jsonl."""

    elapsed_s: float
    execs: int
    execs_per_s: float
    corpus: int
    coverage: int
    #: New failures found by this run.
    failures: int
    #: Failures saved in the output folder so far, by earlier runs too.
    saved_failures: int = 0
    #: Which run of the output folder this is: 1 for the first, 2 once resumed, ...
    run: int = 1
    #: The corpus's stored bytes, in MB, and how many inputs this run kept per minute.
    corpus_mb: float = 0.0
    kept_per_min: float = 0.0
    #: The coverage threshold now (it grows while too many mutants are novel).
    threshold: float = 0.0
    #: This run's own executions and seconds (``execs`` and ``elapsed_s`` count the folder's
    #: earlier runs too): what --runs and --max-time bound.
    run_execs: int = 0
    run_elapsed_s: float = 0.0

    def line(self) -> str:
        this_run = f" (this run {self.run_elapsed_s:.0f}s)" if self.run > 1 else ""
        return (f"#{self.execs} cov: {self.coverage} corp: {self.corpus}/{_size(self.corpus_mb)} "
                f"(+{self.kept_per_min:.0f}/min) fail: {self.failures} "
                f"exec/s: {self.execs_per_s:.0f} elapsed: {self.elapsed_s:.0f}s{this_run}")

    def record(self) -> dict[str, float | int]:
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


def _size(megabytes: float) -> str:
    """libFuzzer's way: 17b, 3Kb, 1.2Mb."""
    if megabytes >= 1:
        return f"{megabytes:.1f}Mb"
    if megabytes * 1024 >= 1:
        return f"{megabytes * 1024:.0f}Kb"
    return f"{megabytes * 1024 * 1024:.0f}b"


class Reporter:
    """Receives a run's events; this base class ignores them all."""

    def info(self, message: str) -> None:
        """A fact worth a line at the start of a run (e.g. the threshold chosen)."""

    def warning(self, message: str) -> None:
        """Something the user should fix; a Python warning unless the reporter says it."""
        warnings.warn(message, stacklevel=3)

    def status(self, snapshot: Snapshot) -> None:
        """Called at every status interval."""

    def failure(self, failure: "Failure", replay_command: str | None) -> None:
        """Called once for each new failure, after its reproducer is saved."""

    def finish(self, snapshot: Snapshot, reason: str) -> None:
        """Called once when the run stops."""


class RecordingReporter(Reporter):
    """Keeps what a run said, for tests and notebooks: its INFO lines, warnings, failures."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.failures: list["Failure"] = []

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def failure(self, failure: "Failure", replay_command: str | None) -> None:
        self.failures.append(failure)


class TerminalReporter(Reporter):
    """libFuzzer-style lines on stderr; a tqdm bar instead when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, total_runs: int | None = None,
                 max_time: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None
        #: What the bar measures: this run's executions out of --runs, else its seconds out
        #: of --max-time (a fraction and a time left), else executions counted.
        self.by_time = total_runs is None and max_time is not None
        if self.stream.isatty():
            from tqdm import tqdm

            if self.by_time:
                self.bar = tqdm(total=max_time, unit="s", file=self.stream, dynamic_ncols=True,
                                desc="nnfuzz", leave=True,
                                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s "
                                           "[{remaining} left{postfix}]")
            else:
                self.bar = tqdm(total=total_runs, unit="exec", file=self.stream,
                                dynamic_ncols=True, desc="nnfuzz", leave=True)
        self.max_time = max_time

    def _print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def info(self, message: str) -> None:
        self._print(f"INFO: {message}")

    def warning(self, message: str) -> None:
        self._print(f"WARNING: {message}")

    def status(self, snapshot: Snapshot) -> None:
        if self.bar is None:
            self._print(snapshot.line())
            return
        self._advance(snapshot)
        executions = f"#{snapshot.run_execs} " if self.by_time else ""
        self.bar.set_postfix_str(f"{executions}cov: {snapshot.coverage} corp: {snapshot.corpus}/"
                                 f"{_size(snapshot.corpus_mb)} fail: {snapshot.failures}",
                                 refresh=True)

    def _advance(self, snapshot: Snapshot) -> None:
        done = snapshot.run_elapsed_s if self.by_time else snapshot.run_execs
        if self.bar.total is not None:  # type: ignore[union-attr]
            done = min(done, self.bar.total)  # type: ignore[union-attr]
        self.bar.update(done - self.bar.n)  # type: ignore[union-attr]

    def failure(self, failure: "Failure", replay_command: str | None) -> None:
        self._print(f"==FAILURE== {failure.describe()}")
        if replay_command:
            self._print(f"  replay: {replay_command}")

    def finish(self, snapshot: Snapshot, reason: str) -> None:
        if self.bar is not None:
            self._advance(snapshot)
            self.bar.close()
        self._print(f"DONE {snapshot.line()} stopped: {reason}")
