"""``--workers N``: one campaign in N processes on one machine.

The file system is the contract between workers, as in AFL's sync folders
and libFuzzer's shared corpus: every worker (nnfuzz.worker_process) is an ordinary :class:`Fuzzer`
with its own random stream, saving its new inputs into ``OUT/corpus/``
(content-hashed, atomic) and taking in the other workers' at a steady
interval. The parent process starts them (``spawn``, never ``fork``: CUDA
cannot be re-initialised in a forked child), is the only writer of
``crashes/``, ``run.json`` and ``stats.jsonl``, prints one status line for
the whole run, saves a failure found by two workers once, restarts a worker
that dies, and on Ctrl-C asks every worker to stop and waits for it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nnfuzz.campaign import Campaign
from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.errors import NnfuzzError, UsageError
from nnfuzz.loop import StartUp
from nnfuzz.reproducer import Failure, failure_from_bytes
from nnfuzz.status import Reporter, Snapshot, announce_domain
from nnfuzz.target import Target
from nnfuzz.worker_process import (WorkerSpec, _worker_main, split_runs, worker_devices,
                                   worker_seed)

#: A worker that dies is restarted; more deaths than this per worker end the run.
MAX_RESTARTS = 5
#: Seconds the parent waits for workers to stop before it terminates them, after Ctrl-C
#: or a failure (a worker may be minimizing one: its reproducer is worth the wait).
STOP_GRACE = 30.0
#: Seconds past --max-time that a run with workers may take: each worker stops at the
#: deadline by itself (after the batch it is in; minimization stops there too), and one
#: still running this long after it is terminated.
MAX_TIME_SLACK = 5.0


class Pool:
    """The parent of several workers, however they run (processes, Ray actors): it feeds
    their news into the run's one :class:`Campaign` (which saves each failure once, says
    one status line and writes run.json) and stops them.

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
        self.target, self.config, self.count, self.device = target, config, count, device
        self.campaign = Campaign(target, config, out, reporter, workers=count)
        self.campaign.device = device or "cpu"
        #: The latest snapshot of each worker, and executions of its earlier incarnations.
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.execs_before: Counter[int] = Counter()
        self.finished: set[int] = set()
        #: The first worker's start-up facts, once it has set up (said once, by the Campaign).
        self.startup: StartUp | None = None
        self.error: NnfuzzError | None = None

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
        """The whole run; the output folder is released when it ends, however."""
        try:
            return self._run()
        finally:
            self.campaign.close()

    def _run(self) -> FuzzResult:
        campaign = self.campaign
        if self.target.seeds is not None:
            announce_domain(campaign.reporter, self.target.domain())
        self._start_all()
        campaign.reporter.info(f"{self.count} workers sharing {campaign.out.corpus}; "  # type: ignore[union-attr]
                               f"{len(campaign.known)} known failure(s)")
        campaign.write_run(None, self._progress())
        reason = StopReason.ERROR
        last_status = time.monotonic()
        grace = STOP_GRACE
        try:
            while len(self.finished) < self.count and self.error is None:
                if campaign.time_is_up():
                    grace = MAX_TIME_SLACK  # each worker stops at the deadline by itself
                    break
                self._wait(timeout=0.2)
                # Before a worker's first news there is nothing to report: a line of zeros
                # would draw a collapse of the coverage in nnfuzz report's plot.
                if self.snapshots and time.monotonic() - last_status >= self.config.status_interval:
                    last_status = time.monotonic()
                    campaign.status(self._progress())
            reason = campaign.stop_reason(self._execs()) or StopReason.MAX_TIME
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        finally:
            self._stop_all(grace)
        if self.error is not None:
            campaign.finish(StopReason.ERROR, self._progress(), record=bool(self.snapshots))
            raise self.error
        return campaign.finish(reason, self._progress(), record=bool(self.snapshots))

    def _start_all(self) -> None:
        raise NotImplementedError

    def _wait(self, timeout: float) -> None:
        raise NotImplementedError

    def _stop_all(self, grace: float) -> None:
        """Ask every worker to stop, wait ``grace`` seconds, then end the ones left."""
        raise NotImplementedError

    def _request_stop(self) -> None:
        raise NotImplementedError

    # --- news from the workers ----------------------------------------------------------

    def _started(self, startup: dict[str, Any]) -> None:
        """A worker set up: the first one's facts are said and recorded (every worker runs
        the same target on the same folder, so the others' are the same)."""
        if self.startup is None:
            self.startup = StartUp(**{key: tuple(value) if isinstance(value, list) else value
                                      for key, value in startup.items()})
            self.campaign.engine_set_up(self.startup)

    def _status_of(self, index: int, snapshot: dict[str, Any]) -> None:
        self.snapshots[index] = snapshot

    def _finished(self, index: int, execs: int, hits: dict[str, int]) -> None:
        self.finished.add(index)
        self.snapshots[index] = {**self.snapshots.get(index, {}), "execs": execs}
        for signature, count in hits.items():
            self.campaign.hit(signature, count)

    def _failure(self, failure: Failure) -> None:
        """Saved once per signature, whichever worker found it first."""
        self.campaign.take(failure)
        if self.config.stop_on_failure:
            self._request_stop()

    # --- this run's progress, summed over the workers ----------------------------------------

    def _execs(self) -> int:
        return sum(self.execs_before.values()) + sum(
            int(s.get("execs", 0)) for s in self.snapshots.values())

    def _progress(self) -> Snapshot:
        latest = list(self.snapshots.values())
        # Every worker holds the shared corpus (its own and the others'); each keeps new
        # inputs of its own.
        return Snapshot(elapsed_s=self.campaign.elapsed(), execs=self._execs(), execs_per_s=0.0,
                        corpus=int(_largest(latest, "corpus")),
                        coverage=int(_largest(latest, "coverage")), failures=0,
                        corpus_mb=_largest(latest, "corpus_mb"),
                        kept_per_min=sum(float(s.get("kept_per_min", 0)) for s in latest),
                        threshold=_largest(latest, "threshold") or (
                            self.startup.threshold if self.startup else 0.0))


def _largest(snapshots: list[dict[str, Any]], field: str) -> float:
    return max((float(s.get(field, 0)) for s in snapshots), default=0.0)


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any = None
    restarts: int = 0


class WorkerPool(Pool):
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
                               self.campaign.out.path.resolve(),  # type: ignore[union-attr]
                               corpus.resolve() if corpus else None,
                               gpu, threads, os.getpid(), self.campaign.deadline,
                               tuple(self.campaign.earlier)))
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
            self._started(message[2])
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
