"""``--workers N``: one campaign in N processes on one machine.

The file system is the contract between workers, as in AFL's sync folders
and libFuzzer's shared corpus: every worker is an ordinary :class:`Fuzzer`
with its own random stream, saving its new inputs into ``OUT/corpus/``
(content-hashed, atomic) and taking in the other workers' at a steady
interval. The parent process starts them (``spawn``, never ``fork``: CUDA
cannot be re-initialised in a forked child), is the only writer of
``crashes/``, ``run.json`` and ``stats.jsonl``, prints one status line for
the whole run, saves a failure found by two workers once, restarts a worker
that dies, and on Ctrl-C asks every worker to stop and waits for it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.loop import run_record, summed
from nnfuzz.errors import NnfuzzError, UsageError
from nnfuzz.output import OutputFolder
from nnfuzz.reproducer import Failure, failure_from_bytes, replay_command
from nnfuzz.status import Reporter, Snapshot, announce_domain
from nnfuzz.target import Target
from nnfuzz.version import __version__

#: A worker that dies is restarted; more deaths than this per worker end the run.
MAX_RESTARTS = 5
#: Seconds the parent waits for workers to stop before it terminates them, after Ctrl-C
#: or a failure (a worker may be minimizing one: its reproducer is worth the wait).
STOP_GRACE = 30.0
#: Seconds past --max-time that a run with workers may take: each worker stops at the
#: deadline by itself (after the batch it is in; minimization stops there too), and one
#: still running this long after it is terminated.
MAX_TIME_SLACK = 5.0
#: How often a worker looks whether its parent is still there (where no death signal can
#: be asked of the kernel).
PARENT_WATCH_INTERVAL = 0.5


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; sent to it when it is spawned."""

    index: int
    target_path: Path
    config: FuzzConfig
    out: Path
    corpus: Path | None
    device: str | None
    threads: int
    parent_pid: int
    #: When the whole run's --max-time is up, on ``time.monotonic()``'s clock.
    deadline: float | None = None


def worker_seed(run_seed: int, index: int, restart: int) -> int:
    """Each worker's own random stream, derived from the run seed (and its restarts)."""
    digest = hashlib.sha256(f"nnfuzz:{run_seed}:{index}:{restart}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def split_runs(runs: int | None, workers: int) -> list[int | None]:
    """--runs shared out: the first workers take one more when it does not divide."""
    if runs is None:
        return [None] * workers
    return [runs // workers + (1 if index < runs % workers else 0) for index in range(workers)]


def worker_devices(device: str | None, workers: int) -> list[str | None]:
    """One worker per GPU by default: with ``cuda`` and several GPUs, worker i gets GPU i mod n."""
    if device != "cuda" or not torch.cuda.is_available():
        return [device] * workers
    count = torch.cuda.device_count()
    return [f"cuda:{index % count}" for index in range(workers)]


# --- the worker process -----------------------------------------------------------------

class _QueueReporter(Reporter):
    """A worker's events, sent to the parent."""

    def __init__(self, index: int, messages: Any) -> None:
        self.index = index
        self.messages = messages

    def status(self, snapshot: Snapshot) -> None:
        self.messages.put(("status", self.index, asdict(snapshot)))

    def warning(self, message: str) -> None:
        """The parent says what is wrong with the target's domain, once for all workers."""

    def failure(self, failure: Failure, replay_command: str | None) -> None:
        # As reproducer bytes: a tensor sent through a queue is a shared-memory handle that
        # dies with its process, and this worker may be gone before the parent reads it.
        self.messages.put(("failure", self.index, failure.to_bytes()))


def _die_with_parent(parent_pid: int) -> None:
    """No worker outlives its parent, however the parent ends (SIGKILL included).

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``);
    elsewhere, and in case the parent died before this ran, a thread watches the
    parent's pid. Neither depends on the message queue: a worker blocked in it (its
    feeder thread waiting on a pipe nobody reads) still goes.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="nnfuzz-parent-watch", daemon=True).start()


def _worker_main(spec: WorkerSpec, messages: Any, stop: Any) -> None:
    """Run one worker until the parent says stop, its share of --runs is done, or time is up."""
    _die_with_parent(spec.parent_pid)
    from nnfuzz.loop import Fuzzer, Shared
    from nnfuzz.target import load_target

    # Ctrl-C reaches every process of the terminal's group: the parent alone decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(spec.threads)

    try:
        target = load_target(spec.target_path, need_seeds=False)
        if spec.device is not None:
            target.model.to(torch.device(spec.device))
        shared = Shared(corpus=spec.out / "corpus", crashes=spec.out / "crashes",
                        should_stop=stop.is_set, deadline=spec.deadline)
        fuzzer = Fuzzer(target, spec.config, corpus=spec.corpus,
                        reporter=_QueueReporter(spec.index, messages), shared=shared)
        messages.put(("ready", spec.index, fuzzer.coverage.threshold))
        try:
            result = fuzzer.run()
        finally:
            fuzzer.close()
        messages.put(("done", spec.index, result.execs, result.hits))
    except NnfuzzError as error:
        messages.put(("error", spec.index, str(error), error.context))


# --- the parent ----------------------------------------------------------------------------

class Campaign:
    """What the parent of several workers keeps, however they run (processes, Ray actors):
    the output folder, the failures (each signature saved once), one status line, run.json.

    Subclasses start the workers in ``_start_all``, deliver their news between
    ``_wait`` calls through ``_status_of``, ``_failure`` and ``_finished``, and stop
    them in ``_stop_all``.
    """

    def __init__(self, target: Target, config: FuzzConfig, out: Path, count: int,
                 device: str | None, reporter: Reporter) -> None:
        if count < 1:
            raise UsageError(f"--workers={count} must be at least 1.")
        if target.path is None:
            raise UsageError("workers need a target file (they each import it): "
                             "use nnfuzz run TARGET.py --workers N.")
        config.check()
        self.target, self.config, self.reporter = target, config, reporter
        self.count, self.device = count, device
        self.out = OutputFolder(out)
        self.out.check_resumable(target.path.name, target.sha256, __version__)
        self.earlier = self.out.earlier_runs()
        self.known = self.out.known_failures()
        self.failures: list[Failure] = []
        self.hits: Counter[str] = Counter()
        self.threshold: float | None = None
        #: The latest snapshot of each worker, and executions of its earlier incarnations.
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.execs_before: Counter[int] = Counter()
        self.finished: set[int] = set()
        self.error: NnfuzzError | None = None
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc)
        #: --max-time bounds the whole run, the workers' start-up included.
        self.deadline = self.started + config.max_time if config.max_time is not None else None

    def worker_configs(self) -> list[FuzzConfig]:
        """Worker i's options: its own random stream and its share of --runs. Its time is
        the run's deadline, not a --max-time of its own counted from its start."""
        return [replace(self.config, seed=worker_seed(self.config.seed, index, 0), runs=runs,
                        max_time=None)
                for index, runs in enumerate(split_runs(self.config.runs, self.count))]

    def restarted_config(self, config: FuzzConfig, index: int, restart: int) -> FuzzConfig:
        """A restarted worker: a fresh stream and the rest of its share (the run's deadline
        stays the same)."""
        runs = config.runs
        if runs is not None:
            runs = max(0, runs - int(self.snapshots.get(index, {}).get("execs", 0)))
        self.execs_before[index] += int(self.snapshots.pop(index, {}).get("execs", 0))
        return replace(config, seed=worker_seed(self.config.seed, index, restart), runs=runs)

    def run(self) -> FuzzResult:
        """The whole campaign; the output folder is released when it ends, however."""
        try:
            return self._campaign()
        finally:
            self.out.close()

    def _campaign(self) -> FuzzResult:
        if self.target.seeds is not None:
            announce_domain(self.reporter, self.target.domain())
        self._start_all()
        self.reporter.info(f"{self.count} workers sharing {self.out.corpus}; "
                           f"{len(self.known)} known failure(s)")
        self._write_run(None)
        reason = StopReason.ERROR
        last_status = time.monotonic()
        grace = STOP_GRACE
        try:
            while len(self.finished) < self.count and self.error is None:
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    grace = MAX_TIME_SLACK  # each worker stops at the deadline by itself
                    break
                self._wait(timeout=0.2)
                # Before a worker's first news there is nothing to report: a line of zeros
                # would draw a collapse of the coverage in nnfuzz report's plot.
                if self.snapshots and time.monotonic() - last_status >= self.config.status_interval:
                    last_status = time.monotonic()
                    self._status()
                    self._write_run(None)
            reason = self._stop_reason()
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        finally:
            self._stop_all(grace)
        if self.error is not None:
            self._finish(StopReason.ERROR)
            raise self.error
        return self._finish(reason)

    def _start_all(self) -> None:
        raise NotImplementedError

    def _wait(self, timeout: float) -> None:
        raise NotImplementedError

    def _stop_all(self, grace: float) -> None:
        """Ask every worker to stop, wait ``grace`` seconds, then end the ones left."""
        raise NotImplementedError

    # --- news from the workers ----------------------------------------------------------

    def _status_of(self, index: int, snapshot: dict[str, Any]) -> None:
        self.snapshots[index] = snapshot

    def _finished(self, index: int, execs: int, hits: dict[str, int]) -> None:
        self.finished.add(index)
        self.snapshots[index] = {**self.snapshots.get(index, {}), "execs": execs}
        self.hits.update(hits)

    def _failure(self, failure: Failure) -> None:
        """Saved once per signature, whichever worker found it first."""
        if failure.signature in self.known:
            return
        self.out.save_failure(failure)
        self.known[failure.signature] = failure.path or Path()
        self.failures.append(failure)
        self.reporter.failure(failure, replay_command(self.target.path, failure.path))  # type: ignore[arg-type]
        if self.config.stop_on_failure:
            self._request_stop()

    def _request_stop(self) -> None:
        raise NotImplementedError

    def _stop_reason(self) -> StopReason:
        if self.config.stop_on_failure and self.failures:
            return StopReason.FAILURE
        if self.config.runs is not None and self._execs() >= self.config.runs:
            return StopReason.RUNS
        return StopReason.MAX_TIME

    # --- the run's record -------------------------------------------------------------------

    def _execs(self) -> int:
        return sum(self.execs_before.values()) + sum(
            int(s.get("execs", 0)) for s in self.snapshots.values())

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _snapshot(self) -> Snapshot:
        elapsed, execs = self._elapsed(), self._execs()
        latest = list(self.snapshots.values())
        return Snapshot(elapsed_s=elapsed + summed(self.earlier, "elapsed_s"),
                        execs=execs + int(summed(self.earlier, "execs")),
                        execs_per_s=execs / elapsed if elapsed > 0 else 0.0,
                        # Every worker holds the shared corpus (its own and the others');
                        # each keeps new inputs of its own.
                        corpus=int(_largest(latest, "corpus")),
                        coverage=int(_largest(latest, "coverage")),
                        failures=len(self.failures), saved_failures=len(self.known),
                        run=len(self.earlier) + 1, corpus_mb=_largest(latest, "corpus_mb"),
                        kept_per_min=sum(float(s.get("kept_per_min", 0)) for s in latest),
                        threshold=_largest(latest, "threshold") or (self.threshold or 0.0))

    def _status(self) -> Snapshot:
        snapshot = self._snapshot()
        self.reporter.status(snapshot)
        self.out.append_stats(snapshot.record())
        return snapshot

    def _write_run(self, reason: StopReason | None) -> None:
        self.out.write_run(run_record(
            target=self.target, config=self.config, device=self.device or "cpu",
            threshold=self.threshold, started_at=self.started_at, reason=reason,
            elapsed_s=self._elapsed(), execs=self._execs(), failures=len(self.failures),
            hits=self.hits, known=len(self.known), earlier=self.earlier,
            snapshot=self._snapshot(), workers=self.count))

    def _finish(self, reason: StopReason) -> FuzzResult:
        # A run that ended before any worker reported (--max-time shorter than their
        # start-up) has no counters to add to stats.jsonl.
        snapshot = self._status() if self.snapshots else self._snapshot()
        self._write_run(reason)
        self.reporter.finish(snapshot, reason.describe())
        return FuzzResult(failures=self.failures, execs=self._execs(), elapsed_s=self._elapsed(),
                          corpus=snapshot.corpus, coverage=snapshot.coverage,
                          threshold=self.threshold or 0.0, stop_reason=reason,
                          hits=dict(self.hits), out=self.out.path)


def _largest(snapshots: list[dict[str, Any]], field: str) -> float:
    return max((float(s.get(field, 0)) for s in snapshots), default=0.0)


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any = None
    restarts: int = 0


class WorkerPool(Campaign):
    """--workers N as processes on this machine, talking to the parent through a queue."""

    def __init__(self, target: Target, config: FuzzConfig, out: Path, corpus: Path | None,
                 count: int, device: str | None, reporter: Reporter) -> None:
        super().__init__(target, config, out, count, device, reporter)
        self.context = multiprocessing.get_context("spawn")
        self.messages = self.context.Queue()
        self.stop = self.context.Event()
        threads = config.threads or max(1, (os.cpu_count() or 1) // count)
        self.workers = [
            _Worker(WorkerSpec(index, target.path.resolve(), worker_config,  # type: ignore[union-attr]
                               self.out.path.resolve(), corpus.resolve() if corpus else None,
                               gpu, threads, os.getpid(), self.deadline))
            for index, (worker_config, gpu) in enumerate(zip(self.worker_configs(),
                                                             worker_devices(device, count)))]

    # --- workers ---------------------------------------------------------------------

    def _start_all(self) -> None:
        for worker in self.workers:
            self._start(worker)

    def _start(self, worker: _Worker) -> None:
        worker.process = self.context.Process(target=_worker_main, daemon=True,
                                              args=(worker.spec, self.messages, self.stop),
                                              name=f"nnfuzz-worker-{worker.spec.index}")
        worker.process.start()

    def _request_stop(self) -> None:
        self.stop.set()

    def _wait(self, timeout: float) -> None:
        self._receive(timeout)
        self._watch()

    def _watch(self) -> None:
        """A worker that died without saying so is restarted with a fresh random stream."""
        for worker in self.workers:
            index = worker.spec.index
            if index in self.finished or worker.process.is_alive():
                continue
            self._receive(timeout=0.5)  # its last words may still be in the queue
            if index in self.finished:
                continue
            if self.stop.is_set():
                self.finished.add(index)
                continue
            if worker.restarts >= MAX_RESTARTS:
                self.error = NnfuzzError(f"worker {index} died {worker.restarts + 1} times (last "
                                         f"exit code {worker.process.exitcode}): run without "
                                         "--workers to see why.")
                return
            worker.restarts += 1
            warnings.warn(f"worker {index} died (exit code {worker.process.exitcode}); "
                          "restarting it", stacklevel=2)
            worker.spec = replace(worker.spec, config=self.restarted_config(
                worker.spec.config, index, worker.restarts))
            self._start(worker)

    def _receive(self, timeout: float) -> None:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "ready":
            self.threshold = self.threshold or message[2]
        elif kind == "status":
            self._status_of(index, message[2])
        elif kind == "failure":
            self._failure(failure_from_bytes(message[2], f"worker {index}'s failure"))
        elif kind == "done":
            self._finished(index, message[2], message[3])
        elif kind == "error":
            self.error = NnfuzzError(message[2], context=message[3])

    def _stop_all(self, grace: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + grace
        while any(w.process.is_alive() for w in self.workers) and time.monotonic() < deadline:
            self._receive(timeout=0.1)
        for worker in self.workers:
            if worker.process.is_alive():
                warnings.warn(f"worker {worker.spec.index} did not stop within {grace:.0f} s; "
                              "terminated (what it had saved is kept)", stacklevel=2)
                worker.process.terminate()
                worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join()
        self._receive(timeout=0.05)
