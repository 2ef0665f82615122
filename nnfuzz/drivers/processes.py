"""``--workers N``: one campaign in N processes on one machine.

The file system is the contract between workers, as in AFL's sync folders and
libFuzzer's shared corpus: every worker is an ordinary engine with its own random
stream, saving its new inputs into ``OUT/corpus/`` (content-hashed, atomic) and taking
in the other workers' between its slices. The parent process starts them (``spawn``,
never ``fork``: CUDA cannot be re-initialised in a forked child), is the only writer of
``crashes/``, ``run.json`` and ``stats.jsonl``, prints one status line for the whole
run, saves a failure found by two workers once, restarts a worker that dies, and on
Ctrl-C asks every worker to stop and waits for it. Workers speak in the messages of
nnfuzz.drivers.messages, through one queue.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from nnfuzz.config import FuzzConfig, StopReason, stop_reason
from nnfuzz.drivers.engine import EngineFactory, EngineStart, Relay, run_slice
from nnfuzz.drivers.messages import Done, Failed, Found, Ready, Status
from nnfuzz.drivers.pool import MAX_RESTARTS, Pool, worker_devices
from nnfuzz.errors import NnfuzzError
from nnfuzz.loop import Fuzzer
from nnfuzz.output import known_failures
from nnfuzz.status import Reporter
from nnfuzz.target import Target
from nnfuzz.tracking import Tracker

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
    #: Where its engine starts from (the Campaign's EngineStart: same machine, same clock).
    start: EngineStart
    device: str | None
    threads: int
    parent_pid: int
    engine: EngineFactory = Fuzzer


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any = None
    restarts: int = 0


class WorkerPool(Pool):
    """--workers N as processes on this machine, talking to the parent through a queue."""

    def __init__(self, target: Target, config: FuzzConfig, out: Path, corpus: Path | None,
                 count: int, device: str | None, reporter: Reporter,
                 engine: EngineFactory = Fuzzer, tracker: Tracker | None = None) -> None:
        super().__init__(target, config, out, count, device, reporter, engine, tracker)
        self.context = multiprocessing.get_context("spawn")
        self.messages = self.context.Queue()
        self.stop = self.context.Event()
        threads = config.threads or max(1, (os.cpu_count() or 1) // count)
        start = self.campaign.engine_start(corpus.resolve() if corpus else None)
        start = replace(start, folder=start.folder.resolve() if start.folder else None)
        self.workers = [
            _Worker(WorkerSpec(index, target.path.resolve(), worker_config,  # type: ignore[union-attr]
                               self.campaign.out.path.resolve(),  # type: ignore[union-attr]
                               start, gpu, threads, os.getpid(), engine))
            for index, (worker_config, gpu) in enumerate(zip(self.worker_configs(),
                                                             worker_devices(device, count)))]

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
            self._hear(message)
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return

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


# --- the worker process -----------------------------------------------------------------

def worker_stop(spec: WorkerSpec, parent_says_stop: Callable[[], bool],
                found: Callable[[], bool]) -> Callable[[int], StopReason | None]:
    """Why a worker stops, asked before each step with its executions so far (the one
    stop rule, config.stop_reason, with the parent's word and the run's deadline)."""
    return lambda execs: stop_reason(spec.config, execs, found=found(),
                                     deadline=spec.start.deadline, stopped=parent_says_stop())


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
    from nnfuzz.target import load_target

    # Ctrl-C reaches every process of the terminal's group: the parent alone decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(spec.threads)
    try:
        target = load_target(spec.target_path, need_seeds=False)
        if spec.device is not None:
            target.model.to(torch.device(spec.device))
        sink = Relay(lambda data: messages.put(Found(spec.index, data)),
                     set(known_failures(spec.out / "crashes", quiet=True)))
        engine = spec.engine(target, spec.config, sink, spec.start)
        try:
            messages.put(Ready(spec.index, engine.startup()))
            reason_to_stop = worker_stop(spec, stop.is_set, lambda: sink.sent > 0)
            while run_slice(engine, spec.config.status_interval, reason_to_stop) is None:
                messages.put(Status(spec.index, engine.progress()))
                engine.import_shared()
            progress = engine.progress()
        finally:
            engine.close()
        messages.put(Done(spec.index, progress, dict(sink.hits)))
    except NnfuzzError as error:
        messages.put(Failed(spec.index, str(error), error.context))
