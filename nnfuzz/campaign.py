"""One run's bookkeeping, whatever drives it: one process, worker processes, or Ray actors.

An engine (nnfuzz.drivers.engine) searches; a driver (nnfuzz.drivers) runs one or many
engines; the :class:`Campaign` is what the run as a whole keeps, once: the
output folder (resumed, locked), where every engine starts from, the failures already
known, the intake of new ones (each signature saved once, minimized, reported), the
engines' start-up facts (said once, recorded), the counters across every run of the
folder, why the run stops, and its result. ``run.json``'s format is in
``nnfuzz.run_record``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from nnfuzz.config import Deadline, FuzzConfig, FuzzResult, StopReason, stop_reason
from nnfuzz.drivers.engine import EngineStart, Progress, Minimize, StartUp
from nnfuzz.output import OutputFolder
from nnfuzz.reproducer import Failure, replay_command
from nnfuzz.run_record import RunEntry, resume_point, run_record, summed
from nnfuzz.status import Reporter, Snapshot
from nnfuzz.target import Target
from nnfuzz.tracking import Tracker
from nnfuzz.version import __version__


class Campaign:
    """What one run keeps, for every driver; see the module's docstring."""

    def __init__(self, target: Target, config: FuzzConfig, out: Path | None,
                 reporter: Reporter | None = None, *, workers: int | None = None,
                 tracker: Tracker | None = None) -> None:
        config.check()
        self.target, self.config = target, config
        self.reporter = reporter or Reporter()
        #: --mlflow, --tensorboard: told the run's facts, status, findings and end, once.
        self.tracker = tracker or Tracker()
        self.workers = workers
        self.out = OutputFolder(out) if out is not None else None
        try:
            if self.out is not None:
                self.out.check_resumable(target.path.name if target.path else None,
                                         target.sha256, __version__)
        except BaseException:
            self.close()
            raise
        #: What earlier runs in the output folder did: totals add up across runs.
        self.earlier: list[RunEntry] = self.out.earlier_runs() if self.out else []
        #: Signature -> reproducer of every failure saved so far (earlier runs' included).
        self.known: dict[str, Path] = self.out.known_failures() if self.out else {}
        self.failures: list[Failure] = []
        self.hits: Counter[str] = Counter()
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc)
        #: --max-time bounds the whole run, set-up (and workers' start-up) included.
        self.deadline = Deadline.after(config.max_time, now=self.started)
        #: What the engines run on, for run.json; a driver sets them once set up.
        self.device = "cpu"
        self.coverage_layers: list[str] = []
        self.engine_record: dict[str, object] = {}

    def engine_start(self, corpus: Path | None = None) -> EngineStart:
        """Where every engine of this run starts from: ``corpus`` (--corpus) and the output
        folder's corpus, the threshold its last run left, and the run's deadline."""
        return EngineStart(corpus=corpus, folder=self.out.corpus if self.out else None,
                           resume=resume_point(self.earlier), deadline=self.deadline)

    def engine_set_up(self, startup: StartUp) -> None:
        """An engine's start-up facts, said once and recorded (run.json's device and
        coverage layers), whichever driver ran it."""
        for line in startup.domain:
            self.reporter.info(line)
        for line in startup.domain_warnings:
            self.reporter.warning(line)
        for line in startup.warnings:
            self.reporter.warning(line)
        for line in startup.infos:
            self.reporter.info(line)
        self.reporter.info(f"coverage threshold {startup.threshold:.6g} ({startup.threshold_from}); "
                           f"corpus {startup.corpus}, {len(self.known)} known failure(s)")
        self.device = startup.device
        self.coverage_layers = list(startup.coverage_layers)
        self.engine_record = dict(startup.record)
        self.tracker.start({"device": self.device, "workers": self.workers,
                            "coverage_layers": self.coverage_layers or None,
                            "threshold_start": startup.threshold})

    def close(self) -> None:
        """Let the next run have the output folder."""
        if self.out is not None:
            self.out.close()

    # --- failures ----------------------------------------------------------------------

    def is_known(self, signature: str) -> bool:
        return signature in self.known

    def hit(self, signature: str, count: int = 1) -> None:
        self.hits[signature] += count

    def take(self, failure: Failure, minimize: Minimize | None = None) -> None:
        """A failure some engine found: saved once per signature (before it is minimized, so
        a kill during minimization still leaves a reproducer), then replaced by the smaller
        one, recorded and reported."""
        if failure.signature in self.known:
            return
        if self.out is not None:
            self.out.save_failure(failure)
        if minimize is not None:
            smaller = minimize(failure)
            if smaller is not failure and self.out is not None:
                self.out.replace_failure(failure, smaller)
            failure = smaller
        self.known[failure.signature] = failure.path or Path()
        self.failures.append(failure)
        self.tracker.finding(failure)
        command = (replay_command(self.target.path, failure.path)
                   if self.target.path is not None and failure.path is not None else None)
        self.reporter.failure(failure, command)

    # --- time and stopping ----------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop_reason(self, execs: int) -> StopReason | None:
        """Why the run is over after ``execs`` executions of this run, or None."""
        return stop_reason(self.config, execs, found=bool(self.failures), deadline=self.deadline)

    # --- what the run says and writes ---------------------------------------------------------

    def snapshot(self, progress: Progress) -> Snapshot:
        """This run's progress (from its engines) with the folder's earlier runs added in."""
        elapsed = self.elapsed()
        return Snapshot(elapsed_s=elapsed + summed(self.earlier, "elapsed_s"),
                        execs=progress.execs + int(summed(self.earlier, "execs")),
                        execs_per_s=progress.execs / elapsed if elapsed > 0 else 0.0,
                        corpus=progress.corpus, coverage=progress.coverage,
                        failures=len(self.failures), saved_failures=len(self.known),
                        run=len(self.earlier) + 1, corpus_mb=progress.corpus_mb,
                        kept_per_min=progress.kept_per_min, threshold=progress.threshold,
                        run_execs=progress.execs, run_elapsed_s=elapsed)

    def status(self, progress: Progress) -> Snapshot:
        """One status line, one stats.jsonl record, and run.json brought up to date (so that a
        killed run's work still counts in the totals)."""
        snapshot = self.snapshot(progress)
        self.reporter.status(snapshot)
        if self.out is not None:
            self.out.append_stats(snapshot.record())
        self.write_run(None, progress)
        self.tracker.status(snapshot, self.failures)
        return snapshot

    def write_run(self, reason: StopReason | None, progress: Progress) -> None:
        if self.out is None:
            return
        self.out.write_run(run_record(
            target=self.target, config=self.config, device=self.device,
            threshold=progress.threshold or None, started_at=self.started_at, reason=reason,
            elapsed_s=self.elapsed(), execs=progress.execs, failures=len(self.failures),
            hits=self.hits, known=len(self.known), earlier=self.earlier,
            snapshot=self.snapshot(progress), workers=self.workers,
            coverage_layers=self.coverage_layers, engine=self.engine_record))

    def finish(self, reason: StopReason, progress: Progress, *, record: bool = True) -> FuzzResult:
        """The last status line and run.json; ``record=False`` when there is no progress to
        add to stats.jsonl (workers that never reported)."""
        snapshot = self.status(progress) if record else self.snapshot(progress)
        self.write_run(reason, progress)
        self.reporter.finish(snapshot, reason.describe())
        result = FuzzResult(failures=self.failures, execs=progress.execs,
                            elapsed_s=self.elapsed(), corpus=progress.corpus,
                            coverage=progress.coverage, threshold=progress.threshold,
                            stop_reason=reason, hits=dict(self.hits),
                            out=self.out.path if self.out else None)
        # after the run's seconds are counted: drawing the report for a tracker takes some
        self.tracker.end(reason.describe(), self.out.path if self.out else None)
        return result
