"""The protocol between an engine and the drivers that run it.

An engine is whatever searches: the fuzz loop (:class:`nnfuzz.loop.Fuzzer`) today, a
training engine next. A driver runs one engine here, or one per worker process or Ray
actor, and hands what they say to the run's one :class:`nnfuzz.campaign.Campaign`. What
crosses between them is here, and nothing else does:

- the driver builds an engine with an :data:`EngineFactory` from the target, the options,
  a :class:`FailureSink` and an :class:`EngineStart` (where the run starts from);
- the engine says once what it learnt setting itself up (:class:`StartUp`), then works
  ``step`` after ``step`` (:func:`run_slice`, between the driver's status lines), reports
  its counters (:class:`Progress`) and sends each new failure to its sink;
- ``import_shared`` takes in what other workers saved; ``close`` releases what it holds.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from nnfuzz.config import NO_DEADLINE, Deadline, FuzzConfig, StopReason

if TYPE_CHECKING:
    from nnfuzz.reproducer import Failure
    from nnfuzz.target import Target


#: Makes a failure smaller (toward its seed) while it fails the same way; the failure
#: itself when it cannot.
Minimize = Callable[["Failure"], "Failure"]
#: Why to stop, asked before each step with the engine's executions so far; None: go on.
StopRule = Callable[[int], "StopReason | None"]


@dataclass(frozen=True)
class Resume:
    """Where the output folder's last run left its coverage: a resumed engine starts from
    that threshold (it grows during a run) when it measures coverage on the same layers."""

    threshold: float
    coverage_layers: tuple[str, ...]


@dataclass(frozen=True)
class EngineStart:
    """What the Campaign hands every engine it runs, whichever driver runs it."""

    #: A folder of inputs to start from as well (--corpus).
    corpus: Path | None = None
    #: Where the run keeps its corpus (OUT/corpus): read at the start, written as it grows.
    folder: Path | None = None
    #: The folder's last run, when this run resumes one.
    resume: Resume | None = None
    #: When the whole run must be over; minimizing a failure stops there too.
    deadline: Deadline = NO_DEADLINE


@dataclass(frozen=True)
class StartUp:
    """What an engine learnt while it set itself up, that the run must say and record:
    handed to the Campaign by every driver (in this process, from a worker process, from
    a Ray actor), which announces it and writes it into run.json."""

    #: The inputs' kinds and bounds, a line each, and what to fix in them.
    domain: tuple[str, ...]
    domain_warnings: tuple[str, ...]
    #: Lines of the start of the run besides the domain: warnings, then infos.
    warnings: tuple[str, ...]
    infos: tuple[str, ...]
    threshold: float
    #: Where the threshold came from: "--threshold" or "from the seeds".
    threshold_from: str
    corpus: int
    device: str
    #: The modules whose activations form the coverage vector ([]: the model's output).
    coverage_layers: tuple[str, ...]
    #: What else run.json must record of this engine (the training engine: its options).
    record: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """An engine's counters at one moment; the Campaign adds time, failures and the folder's
    earlier runs to make a status line (nnfuzz.status.Snapshot)."""

    execs: int = 0
    corpus: int = 0
    coverage: int = 0
    corpus_mb: float = 0.0
    kept_per_min: float = 0.0
    threshold: float = 0.0

    @staticmethod
    def of_workers(latest: list["Progress"], execs: int) -> "Progress":
        """Several workers' counters as one: executions and intake add up; every worker
        holds the shared corpus (its own inputs and the others'), so sizes are the largest."""
        return Progress(execs=execs,
                        corpus=max((p.corpus for p in latest), default=0),
                        coverage=max((p.coverage for p in latest), default=0),
                        corpus_mb=max((p.corpus_mb for p in latest), default=0.0),
                        kept_per_min=sum(p.kept_per_min for p in latest),
                        threshold=max((p.threshold for p in latest), default=0.0))


class FailureSink(Protocol):
    """Where an engine's failures go: the run's Campaign, or a worker's line to its parent."""

    def is_known(self, signature: str) -> bool: ...

    def hit(self, signature: str, count: int = 1) -> None: ...

    def take(self, failure: "Failure", minimize: Minimize | None = None) -> None: ...


class Engine(Protocol):
    """What every driver needs of an engine (see the module's docstring)."""

    #: Executions (examples run through the model) so far: what --runs counts.
    execs: int

    def startup(self) -> StartUp: ...

    def step(self) -> None: ...

    def progress(self) -> Progress: ...

    def import_shared(self) -> None: ...

    def close(self) -> None: ...


#: Builds an engine; a class or a module-level function, so that a worker process can be
#: sent it by name.
EngineFactory = Callable[["Target", FuzzConfig, FailureSink, EngineStart], Engine]


def run_slice(engine: Engine, seconds: float, stop: StopRule) -> StopReason | None:
    """Let ``engine`` step for about ``seconds``, asking ``stop`` before each step; returns
    why to stop, or None when the slice is simply over (time for a status line)."""
    until = time.monotonic() + seconds
    while (reason := stop(engine.execs)) is None and time.monotonic() < until:
        engine.step()
    return reason


@dataclass
class Relay:
    """A worker's failure sink, in a process of its own or a Ray actor: it counts hits and
    keeps the signatures it has seen, and hands each new failure, minimized here, as
    reproducer bytes to ``send``; the parent's Campaign saves each signature once."""

    send: Callable[[bytes], None]
    known: set[str] = field(default_factory=set)
    hits: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def is_known(self, signature: str) -> bool:
        return signature in self.known

    def hit(self, signature: str, count: int = 1) -> None:
        self.hits[signature] += count

    def take(self, failure: "Failure", minimize: Minimize | None = None) -> None:
        self.known.add(failure.signature)
        failure = minimize(failure) if minimize is not None else failure
        # As reproducer bytes: a tensor sent through a queue is a shared-memory handle that
        # dies with its process, and this worker may be gone before the parent reads it.
        self.send(failure.to_bytes())
        self.sent += 1
