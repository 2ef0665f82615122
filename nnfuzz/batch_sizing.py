"""``--batch-size auto``: the batch size at the knee of the model's throughput.

A fuzz iteration costs the model's forward pass on the batch plus the loop's own
work per batch (sampling, mutation, judging, coverage), which hardly depends on
the batch size. Small batches waste the machine on that fixed cost; past the knee,
larger ones only make the corpus update less often (it grows once per batch). So at
start-up the instrumented forward pass is timed on the seeds at a few sizes, and the
smallest size within :data:`WITHIN` of the best rate is chosen.

The choice depends on timing, so two machines (or one busy one) may choose
differently, and with another batch size a run mutates and keeps other inputs: pass
an integer for a run that is the same everywhere. A resumed run reuses the size its
output folder recorded (run.json's ``batch_size``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from nnfuzz.config import AUTO_BATCH, FuzzConfig
from nnfuzz.domain import Inputs
from nnfuzz.execution import Executor
from nnfuzz.run_record import recorded_batch_size

#: The sizes tried, in order, doubling. Above 256 a small model's rate still grows (the
#: loop's cost per batch spreads over more inputs), but finding its bugs does not get
#: faster: the corpus grows once per batch. On the zoo (14 targets, 5 run seeds, descent
#: walks 16 wide at every size), against batch 100, 256 took a median 1.42x the executions
#: to the first failure and 1.06x the CPU seconds without the edge operator (geometric
#: means 1.29x and 0.88x); with it 2.56x and 1.0x (most are found in the first batch, whose
#: size is what the count says).
SIZES = (32, 64, 128, 256)
#: A size within this share of the best rate counts as the best (the issue's ~10%: the
#: timings of two forwards on a loaded machine vary by about that much).
WITHIN = 0.10
#: Larger sizes are not tried once two sizes in a row grew the rate by less than this over
#: the best before them.
GROWTH = 0.05
#: The fuzz loop's own seconds per batch besides the forward pass: 3.5 ms at batch 100
#: and 4.8 ms at batch 1,000 on the tiny MLP of benchmarks/throughput.py (2-core Xeon, one
#: torch thread), most of it fixed per batch.
LOOP_SECONDS = 0.003
#: A size whose forward pass takes longer than this is the last tried: start-up stays
#: within a few seconds however slow the model.
MAX_FORWARD_SECONDS = 0.25
#: Forward passes timed per size after one untimed (its allocations): at least TIMED, and
#: more while they take less than TIMED_SECONDS in all; the fastest counts (the others
#: are the machine's other work: on a loaded machine the median varies by 2x, the minimum
#: by about 10%).
TIMED = 2
TIMED_SECONDS = 0.05

#: Seconds one forward pass of ``size`` inputs takes; None when it does not fit in memory
#: or the inputs do not run.
Timing = Callable[[int], "float | None"]


@dataclass(frozen=True)
class Choice:
    """The batch size chosen, and the estimated inputs per second of each size tried."""

    size: int
    rates: tuple[tuple[int, float], ...]

    def describe(self) -> str:
        tried = ", ".join(f"{size} -> {rate:,.0f}" for size, rate in self.rates)
        return (f"batch size auto: {self.size} (inputs/s with the loop's cost per batch: "
                f"{tried or 'none measured'}; --batch-size N fixes it)")


def choose(seconds_at: Timing, sizes: tuple[int, ...] = SIZES) -> Choice:
    """The smallest of ``sizes`` within WITHIN of the best rate, trying them in order until
    the rate stops growing (two sizes in a row), a forward pass gets slow, or one does not
    fit."""
    rates: list[tuple[int, float]] = []
    for size in sizes:
        seconds = seconds_at(size)
        if seconds is None:
            break
        rates.append((size, size / (seconds + LOOP_SECONDS)))
        if seconds > MAX_FORWARD_SECONDS or _stopped_growing([rate for _, rate in rates]):
            break
    if not rates:
        return Choice(sizes[0], ())
    best = max(rate for _, rate in rates)
    return Choice(min(size for size, rate in rates if rate >= (1 - WITHIN) * best), tuple(rates))


def _stopped_growing(rates: list[float]) -> bool:
    """Whether the last two sizes each fell short of GROWTH over the best before them (one
    alone may be a timing's noise)."""
    return len(rates) >= 3 and all(rates[i] < (1 + GROWTH) * max(rates[:i])
                                   for i in (-2, -1))


def sized(config: FuzzConfig, executor: Executor, seeds: Inputs, folder: Path | None
          ) -> tuple[FuzzConfig, list[str]]:
    """``config`` with an integer batch size, and the lines that say how auto chose it: as
    given; as the output folder's last run ran (``folder``: OUT/corpus), so that a resumed run
    goes on as it was; or timed on the seeds."""
    if config.batch_size != AUTO_BATCH:
        return config, []
    recorded = recorded_batch_size(folder) if folder is not None else None
    if recorded is not None:
        return replace(config, batch_size=recorded), [
            f"batch size auto: {recorded}, as the output folder's last run (--batch-size N "
            "chooses another)"]
    choice = choose(forward_timing(executor, seeds))
    return replace(config, batch_size=choice.size), [choice.describe()]


def forward_timing(executor: Executor, seeds: Inputs) -> Timing:
    """Times the executor's instrumented pass on the seeds, repeated to each size."""
    count = seeds[0].shape[0]
    # On one CPU thread, the process's CPU time: what other processes on a busy machine do
    # not inflate (the wall clock of a 64-input pass of the small CNN varied 3x at load 8).
    clock = (time.process_time if executor.device.type == "cpu" and torch.get_num_threads() == 1
             else time.perf_counter)

    def seconds_at(size: int) -> float | None:
        rows = torch.arange(size, device=seeds[0].device) % count
        batch = tuple(t[rows] for t in seeds)
        timings: list[float] = []
        try:
            while len(timings) <= TIMED or sum(timings[1:]) < TIMED_SECONDS:
                start = clock()
                executor.run(batch, one_by_one=False)
                _synchronize(executor.device)
                timings.append(clock() - start)
        except torch.OutOfMemoryError:
            _release(executor.device)
            return None
        except Exception:  # noqa: BLE001 - a model that raises on its seeds: the seed check says so
            return None
        return min(timings[1:])

    return seconds_at


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
