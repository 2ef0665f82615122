"""The options of a run, why it stopped, and what it found.

A leaf: it imports no torch, so that the command line can define its options (and
answer ``--help``) before anything heavy is loaded. The choices of the options live
here; the modules that act on them import them from here.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnfuzz.errors import UsageError

if TYPE_CHECKING:
    from nnfuzz.reproducer import Failure


#: The norms a --radius is measured in (nnfuzz.mutation.input_distance).
NORMS = ("linf", "l2")
#: The copies ``--reference`` builds (nnfuzz.references), then the runtimes (nnfuzz.runtimes).
COPY_KINDS = ("int8", "fp16", "bf16")
#: The model itself under torch.autocast, and under another execution path's setting
#: (nnfuzz.references: a deep copy run inside the setting, which is restored after).
AUTOCAST_KINDS = ("autocast-bf16", "autocast-fp16")
PATH_KINDS = ("fastpath-off", "sdpa-math", "deterministic", "no-tf32")
RUNTIME_KINDS = ("compile", "export", "onnx")
REFERENCE_KINDS = COPY_KINDS + AUTOCAST_KINDS + PATH_KINDS + RUNTIME_KINDS
#: torch.compile's modes (--compile-mode).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
#: ``disagree``'s default tolerances for outputs that are not class scores: wide
#: enough that fp16 rounding of well-scaled outputs (about 1e-3 relative) passes.
DEFAULT_ATOL = 1e-3
DEFAULT_RTOL = 1e-2
#: The runtimes' tolerances when --atol/--rtol are not given: float32 kernels that fuse or
#: reorder operations differ by a few units in the last place, which grows over a deep
#: model's layers; far tighter than the fp16/bf16 defaults.
RUNTIME_ATOL = 1e-4
RUNTIME_RTOL = 1e-4
#: Autocast's (atol, rtol) (README, *Objectives*): on healthy models' value outputs (an MLP
#: of 6 LayerNorm+GELU blocks, a 2-layer TransformerEncoder, the tests' healthy MLP), inputs
#: up to the bounds, the largest |difference| was 0.0098 in bf16 and 0.0014 in fp16; these
#: leave twice to three times that.
AUTOCAST_TOLERANCES = {"autocast-bf16": (2e-2, 5e-2), "autocast-fp16": (5e-3, 1e-2)}


def default_tolerances(kind: str | None) -> tuple[float, float]:
    """``disagree``'s (atol, rtol) for a reference kind when --atol/--rtol are not given: the
    execution paths run float32 kernels as the runtimes do."""
    if kind in RUNTIME_KINDS or kind in PATH_KINDS:
        return RUNTIME_ATOL, RUNTIME_RTOL
    if kind in AUTOCAST_TOLERANCES:
        return AUTOCAST_TOLERANCES[kind]
    return DEFAULT_ATOL, DEFAULT_RTOL

#: --batch-size auto: the batch size timed at start-up (nnfuzz.batch_sizing).
AUTO_BATCH = "auto"


def batch_size_value(given: str | int) -> int | str:
    """--batch-size as given: "auto" or a positive integer (ValueError names the fix)."""
    if given == AUTO_BATCH:
        return AUTO_BATCH
    try:
        size = int(given)
    except (TypeError, ValueError):
        raise ValueError(f"{given!r} is neither 'auto' nor a whole number: give "
                         "--batch-size auto or --batch-size N (N >= 1).") from None
    if size < 1:
        raise ValueError(f"{size} must be at least 1 (or 'auto').")
    return size


class StopReason(enum.Enum):
    """Why a run ended; recorded in run.json."""

    RUNS = "reached --runs"
    MAX_TIME = "reached --max-time"
    FAILURE = "found a failure (stop_on_failure)"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped by the parent process"
    ERROR = "stopped by an error"

    def describe(self) -> str:
        return self.value


@dataclass(frozen=True)
class Deadline:
    """--max-time, in the one form every part of a run honours it: the moment
    (``time.monotonic()``) the whole run must be over, set once when the run starts, so
    that set-up, workers' start-up and minimization count against it. ``at=None``: no limit.

    ``time.monotonic()`` is one clock for every process of a machine; another machine (a
    Ray node) gets the seconds ``left()`` and makes its own with ``after``.
    """

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None, now: float | None = None) -> "Deadline":
        """``seconds`` after ``now`` (``time.monotonic()``: by default, this moment)."""
        if seconds is None:
            return cls(None)
        return cls((time.monotonic() if now is None else now) + seconds)

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def left(self) -> float | None:
        """Seconds until the deadline (0 once passed); None when there is none."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())


#: No --max-time.
NO_DEADLINE = Deadline()


def stop_reason(config: "FuzzConfig", execs: int, *, found: bool, deadline: Deadline,
                stopped: bool = False) -> StopReason | None:
    """The one stop rule of every driver and worker, asked before each batch: the parent said
    stop (``stopped``), a failure was found under --stop-on-failure, ``execs`` reached --runs
    (the share of it this engine has), or the run's deadline has come."""
    if stopped:
        return StopReason.STOPPED
    if config.stop_on_failure and found:
        return StopReason.FAILURE
    if config.runs is not None and execs >= config.runs:
        return StopReason.RUNS
    if deadline.passed():
        return StopReason.MAX_TIME
    return None


@dataclass(frozen=True)
class FuzzConfig:
    """The options of one run (the engine's and the Campaign's).

    Most ``nnfuzz run`` flags set the field of the same name (--objective sets
    ``objectives``, --layer ``layers``, --no-minimize ``minimize``). Some fields
    have no flag: ``feedback``, ``guided``, ``descent``, ``edges``, ``schedule`` and ``objective_guidance``
    exist for benchmarks and experiments, ``status_interval`` for tests. Some flags
    are no field: --out, --corpus, --device, --workers, --ray and --json/--junit
    choose where and how the run happens (nnfuzz.api.fuzz_target), not what it does.
    """

    #: Objectives by name; None: every one the target makes available.
    objectives: tuple[str, ...] | None = None
    #: Seconds the whole run may take, set-up (and workers' start-up) included: read once,
    #: when the run starts (its Deadline); workers and engines are handed that Deadline.
    max_time: float | None = None
    #: Stop after this many executions (mutants run through the model).
    runs: int | None = None
    #: Mutants per forward pass: big enough to keep the model busy, small enough
    #: that a new corpus element is sampled again soon. "auto" (``--batch-size auto``): timed at
    #: start-up (nnfuzz.batch_sizing). 100 by default: the same run on any machine, and larger
    #: batches did not find the zoo's bugs sooner (python -m benchmarks.batch_sizes; README,
    #: *Commands*).
    batch_size: int | str = 100
    seed: int = 0
    radius: float | None = None
    norm: str = "linf"
    layers: tuple[str, ...] = ()
    threshold: float | None = None
    #: The copy ``disagree`` compares against when the target has no reference():
    #: "int8", "fp16" or "bf16".
    reference: str | None = None
    #: Tolerances of ``disagree`` for outputs that are not class scores; None: the
    #: reference's own (DEFAULT_ATOL/RTOL for copies, tighter for runtimes).
    atol: float | None = None
    rtol: float | None = None
    #: torch.compile's mode for --reference compile (None: its default).
    compile_mode: str | None = None
    #: Use coverage feedback (corpus growth, records, gradient guidance). False
    #: turns the loop into random search around the seeds: the baseline.
    feedback: bool = True
    #: Allow the gradient-guided operator (only used with feedback).
    guided: bool = True
    #: Walk seeds and uniform starts along one gradient for many steps from time to time
    #: (nnfuzz.descent; only used with feedback and guided).
    descent: bool = True
    #: Mix in the edge operator (whole inputs at a bound, constant, all padding, ...).
    #: Off only to measure what the rest of the search finds without it.
    edges: bool = True
    #: Deal each batch's rows to (input, operator) pairs by the records they set per
    #: forward pass (nnfuzz.schedule, a bandit as MOpt schedules mutators). Off by default:
    #: measured on the zoo it needed as many executions as the uniform draw, and on
    #: TensorFuzz's nans experiment a higher median (2,712 against 1,830; benchmarks/RESULTS.md).
    schedule: bool = False
    #: Guide the search by the objectives themselves: keep inputs that set a
    #: new high loss (``loss``), a new low top-two margin or a new high gap to
    #: the reference (``disagree``), and step down the margin's gradient. None:
    #: each objective's own default, set by measurement
    #: (Objective.guides_by_default); True or False: all of them.
    objective_guidance: bool | None = None
    stop_on_failure: bool = False
    #: Minimize each new failure toward its seed before reporting it (libFuzzer's
    #: -minimize_crash, done at once): the reproducer in crashes/ is the small one.
    minimize: bool = True
    #: Seconds between status lines and stats.jsonl records.
    status_interval: float = 1.0
    #: The corpus's caps: past either, its least useful inputs are evicted (memory and
    #: OUT/corpus). 10,000 inputs or 512 MB: a night's run of a 1,000-class CNN stays
    #: within a laptop's disk; None: no cap.
    max_corpus: int | None = 10_000
    max_corpus_mb: float | None = 512.0
    #: The novelty index's cap: past it, the index is rebuilt from the corpus's own coverage
    #: vectors (what a resumed run starts from), so a long run's memory stays bounded when the
    #: corpus is (the index keeps every vector it was given: 121 bytes per 10-dim vector).
    max_coverage_mb: float | None = 256.0
    #: torch's intra-op threads for the model; None leaves torch's own setting (for
    #: --workers N: the cores shared out between the workers).
    threads: int | None = None

    def check(self) -> None:
        if self.norm not in NORMS:
            raise UsageError(f"--norm {self.norm!r} is unknown: choose {' or '.join(NORMS)}.")
        for name in ("max_time", "radius", "threshold"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name.replace('_', '-')}={value!r} must be positive.")
        if self.runs is not None and self.runs < 0:
            raise UsageError(f"--runs={self.runs!r} must not be negative.")
        if self.reference is not None and self.reference not in REFERENCE_KINDS:
            raise UsageError(f"--reference {self.reference!r} is unknown: choose "
                             f"{', '.join(REFERENCE_KINDS)}.")
        for name in ("atol", "rtol"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UsageError(f"--{name}={getattr(self, name)!r} must not be negative.")
        for name in ("max_corpus", "max_corpus_mb", "max_coverage_mb"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name.replace('_', '-')}={value!r} must be positive.")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode {self.compile_mode!r} is unknown: choose "
                             f"{', '.join(COMPILE_MODES)}.")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads={self.threads!r} must be at least 1.")
        if self.batch_size != AUTO_BATCH and not (isinstance(self.batch_size, int)
                                                  and self.batch_size >= 1):
            raise UsageError(f"--batch-size={self.batch_size!r} must be at least 1 (or 'auto').")


@dataclass
class FuzzResult:
    """What a run found and how far it got."""

    failures: list[Failure]
    execs: int
    elapsed_s: float
    corpus: int
    coverage: int
    threshold: float
    stop_reason: StopReason
    #: Hits per failure signature, known ones included.
    hits: dict[str, int] = field(default_factory=dict)
    out: Path | None = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason is StopReason.INTERRUPTED
