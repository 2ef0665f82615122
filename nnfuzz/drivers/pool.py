"""What every driver of several workers shares, however they run (processes on this
machine, nnfuzz.drivers.processes; Ray actors, nnfuzz.drivers.ray_actors): the run's one
Campaign fed with their news (nnfuzz.drivers.messages), their share of the options, the
wait loop, and the pure helpers that split a run between workers.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from nnfuzz.campaign import Campaign
from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.drivers.engine import EngineFactory, Progress, StartUp
from nnfuzz.drivers.messages import Done, Failed, Found, Message, Ready, Status
from nnfuzz.errors import NnfuzzError, UsageError
from nnfuzz.reproducer import Failure, failure_from_bytes
from nnfuzz.status import Reporter
from nnfuzz.target import Target
from nnfuzz.tracking import Tracker

#: A worker that dies is restarted; more deaths than this per worker end the run.
MAX_RESTARTS = 5
#: Seconds the parent waits for workers to stop before it terminates them, after Ctrl-C
#: or a failure (a worker may be minimizing one: its reproducer is worth the wait).
STOP_GRACE = 30.0
#: Seconds past --max-time that a run with workers may take: each worker stops at the
#: deadline by itself (after the batch it is in; minimization stops there too), and one
#: still running this long after it is terminated.
MAX_TIME_SLACK = 5.0


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


class Pool:
    """The parent of several workers: it feeds their news into the run's one
    :class:`Campaign` (which saves each failure once, says one status line and writes
    run.json) and stops them.

    Subclasses start the workers in ``_start_all``, hand their news to ``_hear`` from
    ``_wait``, ask them to stop in ``_request_stop`` and stop them in ``_stop_all``.
    """

    def __init__(self, target: Target, config: FuzzConfig, out: Path, count: int,
                 device: str | None, reporter: Reporter, engine: EngineFactory,
                 tracker: Tracker | None = None) -> None:
        if count < 1:
            raise UsageError(f"--workers={count} must be at least 1.")
        if target.path is None:
            raise UsageError("workers need a target file (they each import it): "
                             "use nnfuzz run TARGET.py --workers N.")
        self.target, self.config, self.count, self.device = target, config, count, device
        self.engine = engine
        # Only the parent tracks: the run is logged once, whatever the workers.
        self.campaign = Campaign(target, config, out, reporter, workers=count, tracker=tracker)
        self.campaign.device = device or "cpu"
        #: The latest progress of each worker, and executions of its earlier incarnations.
        self.latest: dict[int, Progress] = {}
        self.execs_before: Counter[int] = Counter()
        self.finished: set[int] = set()
        #: The first worker's start-up facts, once it has set up (said once, by the Campaign).
        self.startup: StartUp | None = None
        self.error: NnfuzzError | None = None

    def worker_configs(self) -> list[FuzzConfig]:
        """Worker i's options: its own random stream and its share of --runs (its time is
        the run's Deadline, handed to it apart)."""
        return [replace(self.config, seed=worker_seed(self.config.seed, index, 0), runs=runs)
                for index, runs in enumerate(split_runs(self.config.runs, self.count))]

    def restarted_config(self, config: FuzzConfig, index: int, restart: int) -> FuzzConfig:
        """A restarted worker: a fresh stream and the rest of its share (the run's deadline
        stays the same)."""
        done = self.latest.pop(index, Progress()).execs
        self.execs_before[index] += done
        runs = None if config.runs is None else max(0, config.runs - done)
        return replace(config, seed=worker_seed(self.config.seed, index, restart), runs=runs)

    def run(self) -> FuzzResult:
        """The whole run; the output folder is released when it ends, however."""
        try:
            return self._run()
        finally:
            self.close()

    def close(self) -> None:
        """Let the next run have the output folder."""
        self.campaign.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> FuzzResult:
        campaign = self.campaign
        self._start_all()
        campaign.reporter.info(f"{self.count} workers sharing {campaign.out.corpus}; "  # type: ignore[union-attr]
                               f"{len(campaign.known)} known failure(s)")
        campaign.write_run(None, self._progress())
        reason = StopReason.ERROR
        last_status = time.monotonic()
        grace = STOP_GRACE
        try:
            while len(self.finished) < self.count and self.error is None:
                if campaign.deadline.passed():
                    grace = MAX_TIME_SLACK  # each worker stops at the deadline by itself
                    break
                self._wait(timeout=0.2)
                # Before a worker's first news there is nothing to report: a line of zeros
                # would draw a collapse of the coverage in nnfuzz report's plot.
                if self.latest and time.monotonic() - last_status >= self.config.status_interval:
                    last_status = time.monotonic()
                    campaign.status(self._progress())
            reason = campaign.stop_reason(self._execs()) or StopReason.MAX_TIME
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        finally:
            self._stop_all(grace)
        if self.error is not None:
            campaign.finish(StopReason.ERROR, self._progress(), record=bool(self.latest))
            raise self.error
        return campaign.finish(reason, self._progress(), record=bool(self.latest))

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

    def _hear(self, message: Message) -> None:
        """One piece of a worker's news, whichever way it came."""
        if isinstance(message, Ready):
            self._started(message.startup)
        elif isinstance(message, Status):
            self.latest[message.worker] = message.progress
        elif isinstance(message, Found):
            self._found(failure_from_bytes(message.reproducer,
                                           f"worker {message.worker}'s failure"))
        elif isinstance(message, Done):
            self.finished.add(message.worker)
            self.latest[message.worker] = message.progress
            for signature, count in message.hits.items():
                self.campaign.hit(signature, count)
        elif isinstance(message, Failed):
            self.error = NnfuzzError(message.message, context=message.context)

    def _started(self, startup: StartUp) -> None:
        """A worker set up: the first one's facts are said and recorded (every worker runs
        the same target on the same folder, so the others' are the same)."""
        if self.startup is None:
            self.startup = startup
            self.campaign.engine_set_up(startup)

    def _found(self, failure: Failure) -> None:
        """Saved once per signature, whichever worker found it first."""
        self.campaign.take(failure)
        if self.config.stop_on_failure:
            self._request_stop()

    # --- this run's progress, summed over the workers ----------------------------------------

    def _execs(self) -> int:
        return sum(self.execs_before.values()) + sum(p.execs for p in self.latest.values())

    def _progress(self) -> Progress:
        progress = Progress.of_workers(list(self.latest.values()), self._execs())
        if progress.threshold == 0.0 and self.startup is not None:
            progress = replace(progress, threshold=self.startup.threshold)
        return progress
