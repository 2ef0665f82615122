"""A worker process of ``--workers N``: one engine, its news sent to the parent.

Everything here runs in the spawned child but ``WorkerSpec`` and the small
pure helpers the parent uses too (``worker_seed``, ``split_runs``,
``worker_devices``). A worker fuzzes in status-interval slices; between them it
sends its progress and takes in the corpus files the others saved. Its new
failures are minimized here and sent as reproducer bytes; the parent saves them.
It never outlives the parent (``_die_with_parent``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from nnfuzz.campaign import Shrink
from nnfuzz.config import FuzzConfig, StopReason, stop_reason
from nnfuzz.errors import NnfuzzError
from nnfuzz.output import known_failures
from nnfuzz.reproducer import Failure

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
    #: The output folder's earlier runs (run.json), where a resumed engine starts from.
    earlier: tuple[dict[str, Any], ...] = ()


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

class Relay:
    """A worker's failure sink, in a process of its own or a Ray actor: it counts hits and
    keeps the signatures it has seen, and hands each new failure, minimized here, as
    reproducer bytes to ``send``; the parent's Campaign saves each signature once."""

    def __init__(self, send: Callable[[bytes], None], known: set[str] | None = None) -> None:
        self.send, self.known = send, set(known or ())
        self.hits: Counter[str] = Counter()
        self.sent = 0

    def is_known(self, signature: str) -> bool:
        return signature in self.known

    def hit(self, signature: str, count: int = 1) -> None:
        self.hits[signature] += count

    def take(self, failure: Failure, shrink: Shrink | None = None) -> None:
        self.known.add(failure.signature)
        failure = shrink(failure) if shrink is not None else failure
        # As reproducer bytes: a tensor sent through a queue is a shared-memory handle that
        # dies with its process, and this worker may be gone before the parent reads it.
        self.send(failure.to_bytes())
        self.sent += 1


def worker_stop(spec: WorkerSpec, parent_says_stop: Callable[[], bool],
                found: Callable[[], bool]) -> Callable[[int], StopReason | None]:
    """Why a worker stops, asked before each batch with its executions so far (the one
    stop rule, config.stop_reason, with the parent's word and the run's deadline)."""
    return lambda execs: stop_reason(spec.config, execs, found=found(), deadline=spec.deadline,
                                     stopped=parent_says_stop())


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
    from nnfuzz.loop import Fuzzer
    from nnfuzz.target import load_target

    # Ctrl-C reaches every process of the terminal's group: the parent alone decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(spec.threads)
    config = spec.config
    try:
        target = load_target(spec.target_path, need_seeds=False)
        if spec.device is not None:
            target.model.to(torch.device(spec.device))
        sink = Relay(lambda data: messages.put(("failure", spec.index, data)),
                     set(known_failures(spec.out / "crashes", quiet=True)))
        fuzzer = Fuzzer(target, config, sink, corpus=spec.corpus, folder=spec.out / "corpus",
                        earlier=spec.earlier, deadline=spec.deadline)
        reason_to_stop = worker_stop(spec, stop.is_set, lambda: sink.sent > 0)
        messages.put(("ready", spec.index, asdict(fuzzer.startup())))
        try:
            while fuzzer.run_slice(config.status_interval, reason_to_stop) is None:
                messages.put(("status", spec.index, asdict(fuzzer.progress())))
                fuzzer.import_shared()
            messages.put(("status", spec.index, asdict(fuzzer.progress())))
        finally:
            fuzzer.close()
        messages.put(("done", spec.index, fuzzer.execs, dict(sink.hits)))
    except NnfuzzError as error:
        messages.put(("error", spec.index, str(error), error.context))
