"""Throughput: nnfuzz's executions per second against the model's own forward pass.

    python -m benchmarks.throughput [--quick] [--repeats R]

A fuzzer is only as good as the inputs it can try, so this asks how much of
the machine nnfuzz leaves to the model. For a tiny MLP (64-32-10) and a small
CNN on 28x28 inputs (both randomly initialised, torch seed 0), at batch sizes
100 and 1000, it times

- raw: ``with torch.no_grad(): model(x)`` in a loop over pre-made batches;
- nnfuzz: ``nnfuzz.fuzz(model, seeds, runs=N, batch_size=B, seed=0,
  objectives=["nonfinite"])``, as ``FuzzResult.execs / FuzzResult.elapsed_s``
  (the loop only: set-up, seed checks and coverage priming are not in it),

interleaved in one process with one torch thread, R times each, and reports
the ratio (nnfuzz executions per second / raw inputs per second: 1 means
nnfuzz costs nothing beyond the model) and the overhead per input (nnfuzz
seconds per input minus raw seconds per input). Targets: ratio >= 0.8 on the
CNN, overhead <= 5 us per input on the MLP. A cProfile of nnfuzz on the MLP
shows where the rest of the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import nnfuzz
from benchmarks import machine, report
from benchmarks.throughput_notes import BEFORE, FORWARD_EXPLAINED, IN_THE_WAY, TRANSFERS_NOTE

#: The batch sizes measured: 100 is the default; "auto" is `nnfuzz run --batch-size auto`
#: (nnfuzz.batch_sizing), chosen once per model at the start of its measurement and then given
#: to every repetition.
BATCH_SIZES: tuple[int | str, ...] = (100, 1000, "auto")
#: Targets (issue): ratio on the CNN, overhead per input on the MLP.
CNN_RATIO_TARGET = 0.8
MLP_OVERHEAD_TARGET_US = 5.0
#: Raw passes repeat the pre-made batches until this many seconds have gone by.
RAW_MIN_SECONDS = 0.3
#: Distinct pre-made batches the raw loop cycles through.
RAW_BATCHES = 8
SEEDS = 32


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def small_cnn() -> nn.Module:
    """conv 1->8 3x3, pool, conv 8->16 3x3, pool, linear 16*5*5 -> 10 on (1, 28, 28)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 10))


#: name -> (builder, input shape, nnfuzz executions per measurement: quick, full).
MODELS = {
    "tiny MLP 64-32-10": (tiny_mlp, (64,), 20_000, 100_000),
    "small CNN 28x28": (small_cnn, (1, 28, 28), 4_000, 20_000),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model (eval, torch seed 0) and 32 seeds uniform in [0, 1]."""
    builder, shape, _, _ = MODELS[name]
    torch.manual_seed(0)
    model = builder().eval()
    seeds = torch.rand(SEEDS, *shape, generator=torch.Generator().manual_seed(1))
    return model, seeds


def raw_seconds_per_input(model: nn.Module, batches: list[torch.Tensor]) -> float:
    """The model alone: forward passes over pre-made batches, no hooks, no copies."""
    inputs, start = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - start < RAW_MIN_SECONDS:
            for batch in batches:
                model(batch)
                inputs += batch.shape[0]
    return (time.perf_counter() - start) / inputs


def nnfuzz_seconds_per_input(model: nn.Module, seeds: torch.Tensor, runs: int,
                             batch: int, descent: bool = True, guided: bool = True) -> float:
    result = nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), runs=runs, batch_size=batch, seed=0,
                         objectives=["nonfinite"], descent=descent, guided=guided)
    return result.elapsed_s / result.execs


def auto_batch(model: nn.Module, seeds: torch.Tensor) -> int:
    """What --batch-size auto chooses for the model on this machine now."""
    from nnfuzz.batch_sizing import choose, forward_timing
    from nnfuzz.execution import Executor

    with Executor(model) as executor:
        return choose(forward_timing(executor, (seeds,))).size


@dataclass
class Measurement:
    model: str
    batch: int
    #: The batch size was --batch-size auto's choice.
    auto: bool
    runs: int
    raw_s: list[float]  # seconds per input, one per repetition
    nnfuzz_s: list[float]
    #: nnfuzz without descent walks (what the walks cost), likewise.
    no_walks_s: list[float]
    #: nnfuzz without any gradient pass (no walks, no guided mutations): the loop's ceiling.
    no_gradients_s: list[float]

    @property
    def ratio(self) -> float:
        """nnfuzz executions per second / raw inputs per second (medians)."""
        return statistics.median(self.raw_s) / statistics.median(self.nnfuzz_s)

    @property
    def paired_ratios(self) -> list[float]:
        """The ratio of each repetition (raw and nnfuzz ran back to back)."""
        return [raw / fuzz for raw, fuzz in zip(self.raw_s, self.nnfuzz_s)]

    @property
    def overhead_us(self) -> float:
        return 1e6 * (statistics.median(self.nnfuzz_s) - statistics.median(self.raw_s))


def measure(name: str, batch: int | str, runs: int, repeats: int) -> Measurement:
    """Raw and nnfuzz, interleaved, ``repeats`` times each, after one warm-up of each; the
    batch size "auto" is chosen once, first."""
    model, seeds = build(name)
    given, batch = batch, auto_batch(model, seeds) if batch == "auto" else int(batch)
    generator = torch.Generator().manual_seed(2)
    batches = [torch.rand(batch, *seeds.shape[1:], generator=generator) for _ in range(RAW_BATCHES)]
    raw_seconds_per_input(model, batches[:1])
    nnfuzz_seconds_per_input(model, seeds, batch, batch)
    found = Measurement(name, batch, given == "auto", runs, [], [], [], [])
    for _ in range(repeats):
        found.raw_s.append(raw_seconds_per_input(model, batches))
        found.nnfuzz_s.append(nnfuzz_seconds_per_input(model, seeds, runs, batch))
        found.no_walks_s.append(nnfuzz_seconds_per_input(model, seeds, runs, batch, False))
        found.no_gradients_s.append(nnfuzz_seconds_per_input(model, seeds, runs, batch, False,
                                                             False))
    return found


def profile(runs: int, batch: int = 100, top: int = 15) -> str:
    """cProfile of nnfuzz on the tiny MLP: the top functions by cumulative and by own time."""
    model, seeds = build("tiny MLP 64-32-10")
    profiler = cProfile.Profile()
    profiler.enable()
    nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), runs=runs, batch_size=batch, seed=0,
                objectives=["nonfinite"])
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    parts = []
    for key, title in (("cumulative", "cumulative time (the function and what it calls)"),
                       ("tottime", "own time (the function's body alone)")):
        rows = sorted(stats.stats.items(),  # type: ignore[attr-defined]
                      key=lambda item: item[1][3 if key == "cumulative" else 2], reverse=True)
        parts.append(f"Top {top} by {title}:\n\n" + report.table(
            ["function", "calls", "own s", "own share", "cumulative s", "cumulative share"],
            [[f"`{_where(f)}`", f"{nc:,}", f"{tt:.3f}", f"{tt / total:.0%}", f"{ct:.3f}",
              f"{ct / total:.0%}"]
             for f, (_, nc, tt, ct, _) in rows[:top]]))
    return (f"cProfile of `nnfuzz.fuzz` on the tiny MLP, {runs:,} executions, batch size {batch}, "
            f"one torch thread: {total:.2f} s profiled (cProfile slows Python-heavy code, so "
            "shares matter more than seconds).\n\n" + "\n\n".join(parts))


def _where(function: tuple[str, int, str]) -> str:
    """file:line(name), the path cut to the package (nnfuzz/..., torch/...)."""
    path, line, name = function
    for anchor in ("site-packages/", f"{machine.ROOT}/"):
        if anchor in path:
            path = path.split(anchor, 1)[1]
            break
    return f"{path}:{line}({name})" if line else name


#: What a fuzz step may wait on the host for, or copy through it: on a GPU each is a
#: synchronisation (tensor.item() and friends, nonzero() for its size, torch.tensor() of a
#: host list copied to the device, numpy for faiss and hashing).
HOST_CALLS = {torch.Tensor: ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__",
                             "nonzero"), torch: ("tensor", "nonzero", "unique")}


def host_transfers(name: str, batch: int = 100, batches: int = 200) -> tuple[int, list[list[str]]]:
    """Calls per step that wait on or copy through the host, by nnfuzz call site, counted by
    wrapping them while Fuzzer.step runs (fuzz and descent-walk steps alike)."""
    import collections
    import traceback

    from nnfuzz import loop

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    watching, steps = [False], [0]
    originals = [(owner, call, getattr(owner, call)) for owner, calls in HOST_CALLS.items()
                 for call in calls]

    def counted(call: str, original):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            if watching[0]:
                frames = [f for f in traceback.extract_stack()[:-1] if "/nnfuzz/" in f.filename]
                if frames:
                    where = frames[-1]
                    counts[(call, f"{where.filename.split('/nnfuzz/')[-1]}:{where.name}")] += 1
            return original(*args, **kwargs)
        return wrapper

    step = loop.Fuzzer.step

    def watched_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        watching[0] = True
        try:
            return step(self, *args, **kwargs)
        finally:
            watching[0] = False
            steps[0] += 1

    try:
        for owner, call, original in originals:
            setattr(owner, call, counted(call, original))
        loop.Fuzzer.step = watched_step  # type: ignore[method-assign]
        model, seeds = build(name)
        nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), runs=batches * batch, batch_size=batch,
                    seed=0, objectives=["nonfinite"])
    finally:
        for owner, call, original in originals:
            setattr(owner, call, original)
        loop.Fuzzer.step = step  # type: ignore[method-assign]
    rows = [[f"`{where}`", f"`{call}`", f"{count / steps[0]:.2f}"]
            for (call, where), count in counts.most_common()]
    return steps[0], rows + [["**all**", "", f"**{sum(counts.values()) / steps[0]:.2f}**"]]


def verdicts(measurements: list[Measurement]) -> list[str]:
    lines = []
    for m in measurements:
        if m.model.startswith("small CNN"):
            met = m.ratio >= CNN_RATIO_TARGET
            lines.append(f"- CNN, batch {_batch(m)}: ratio {m.ratio:.3f} against the target "
                         f">= {CNN_RATIO_TARGET}: **{'met' if met else 'not met'}**.")
        else:
            met = m.overhead_us <= MLP_OVERHEAD_TARGET_US
            lines.append(f"- MLP, batch {_batch(m)}: overhead {m.overhead_us:.1f} µs per input "
                         f"against the target <= {MLP_OVERHEAD_TARGET_US:g} µs: "
                         f"**{'met' if met else 'not met'}**.")
    return lines


def _batch(m: Measurement) -> str:
    return f"auto ({m.batch})" if m.auto else str(m.batch)


def plot(measurements: list[Measurement], quick: bool) -> str | None:
    """Microseconds per input, raw and nnfuzz, per model and batch size (log scale)."""
    plt = report.pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    labels = [f"{m.model.split(' ')[1]}, B={_batch(m)}" for m in measurements]
    xs = range(len(measurements))
    raw = [1e6 * statistics.median(m.raw_s) for m in measurements]
    fuzz = [1e6 * statistics.median(m.nnfuzz_s) for m in measurements]
    axes.bar([x - 0.2 for x in xs], raw, 0.4, label="model alone (raw forward)")
    axes.bar([x + 0.2 for x in xs], fuzz, 0.4, label="nnfuzz (one execution)")
    for x, m, height in zip(xs, measurements, fuzz):
        axes.text(x + 0.2, height * 1.05, f"ratio {m.ratio:.2g}", ha="center", va="bottom",
                  fontsize=8)
    axes.set_yscale("log")
    axes.set_ylim(top=max(fuzz) * 3)
    axes.set_xticks(list(xs), labels)
    axes.set_ylabel("microseconds per input (median)")
    axes.set_title("Time per input: the model alone against nnfuzz (1 torch thread)", fontsize=10)
    axes.legend(fontsize=8)
    return report.save_figure(figure, "throughput", quick)


def markdown(measurements: list[Measurement], repeats: int, quick: bool, wall_s: float,
             started: str, profiled: str, image: str | None, forward: str = "",
             transfers: tuple[int, list[list[str]]] | None = None) -> str:
    rows = [[m.model, _batch(m), f"{m.runs:,}",
             f"{1 / statistics.median(m.raw_s):,.0f}", f"{1 / statistics.median(m.nnfuzz_s):,.0f}",
             f"**{m.ratio:.3f}**", f"{1e6 * statistics.median(m.raw_s):.2f}",
             f"{1e6 * statistics.median(m.nnfuzz_s):.2f}", f"**{m.overhead_us:.2f}**",
             f"{min(m.paired_ratios):.3f}–{max(m.paired_ratios):.3f}",
             f"{statistics.median(m.raw_s) / statistics.median(m.no_walks_s):.3f}",
             f"{statistics.median(m.raw_s) / statistics.median(m.no_gradients_s):.3f}"]
            for m in measurements]
    return "\n".join([
        "## Throughput: nnfuzz's executions per second against the model's own", "",
        report.command_line("throughput", quick, wall_s, started),
        "",
        "Models: a tiny MLP (Linear 64→32, ReLU, Linear 32→10) and a small CNN on 1×28×28 "
        "inputs (conv 1→8 3×3, ReLU, max-pool 2, conv 8→16 3×3, ReLU, max-pool 2, Linear "
        f"400→10), both randomly initialised (torch seed 0), {SEEDS} seeds uniform in [0, 1], "
        "`bounds=(0, 1)`. "
        "Raw: `with torch.no_grad(): model(x)` over "
        f"{RAW_BATCHES} pre-made batches, cycled for at least {RAW_MIN_SECONDS} s. nnfuzz: "
        "`nnfuzz.fuzz(model, seeds, runs=N, batch_size=B, seed=0, objectives=[\"nonfinite\"])`, "
        "rate = `execs / elapsed_s` (the loop only: the seed check and coverage priming come "
        "before its clock starts). Both run in one process with `torch.set_num_threads(1)`, "
        f"interleaved, after one warm-up each, {repeats} repetitions each; the table gives "
        "medians. Ratio = nnfuzz executions per second / raw inputs per second (1 = nnfuzz "
        "costs nothing beyond the model); overhead = nnfuzz µs per input − raw µs per input. "
        "The last two columns are nnfuzz with `descent=False`, then also `guided=False`, run "
        "in the same repetitions: what the descent walks' gradient passes cost (they get 2–25% "
        "of the work), and the ratio with no gradient pass at all (no walks, no guided "
        "mutations: what the rest of the loop allows).",
        "",
        report.table(["model", "batch", "nnfuzz execs per repetition", "raw inputs/s",
                      "nnfuzz execs/s", "ratio", "raw µs/input", "nnfuzz µs/input",
                      "overhead µs/input", "ratio per repetition, min–max",
                      "ratio without descent walks", "ratio without any gradient pass"], rows),
        "",
        f"Targets: ratio >= {CNN_RATIO_TARGET} on the small CNN; overhead <= "
        f"{MLP_OVERHEAD_TARGET_US:g} µs per input on the tiny MLP.", "",
        *verdicts(measurements),
        *(["", image] if image else []),
        "", BEFORE,
        *(["", "### The instrumented forward pass (small CNN, batch 100)", "", FORWARD_EXPLAINED,
           "", forward] if forward else []),
        *(["", "### Host transfers and synchronisations per step (small CNN, batch 100, CPU)", "",
           f"Calls that wait on the host or copy through it (on a GPU, each a synchronisation), "
           f"counted over the {transfers[0]} steps of a 20,000-execution run by wrapping "
           f"{', '.join(c for calls in HOST_CALLS.values() for c in calls)} while "
           "`Fuzzer.step` runs. No GPU was at hand: the GPU figures of issue #29 are missing.",
           "", report.table(["where", "call", "per step"], transfers[1]), "", TRANSFERS_NOTE]
          if transfers else []),
        "", IN_THE_WAY,
        "", "### Where nnfuzz's time goes (tiny MLP)", "", profiled,
    ])


def run(quick: bool, repeats: int | None = None) -> Path:
    torch.set_num_threads(1)
    repeats = repeats or (3 if quick else 7)
    started, start = machine.provenance(), time.perf_counter()
    measurements = []
    for name, (_, _, quick_runs, full_runs) in MODELS.items():
        for batch in BATCH_SIZES:
            m = measure(name, batch, quick_runs if quick else full_runs, repeats)
            measurements.append(m)
            print(f"{name}, batch {batch}: ratio {m.ratio:.3f}, overhead {m.overhead_us:.2f} us "
                  "per input", flush=True)
    from benchmarks.profile import forward

    profiled = profile(MODELS["tiny MLP 64-32-10"][2 if quick else 3])
    forward_text = forward(100)
    transfers = host_transfers("small CNN 28x28")
    image = plot(measurements, quick)
    text = markdown(measurements, repeats, quick, time.perf_counter() - start, started,
                    profiled, image, forward_text, transfers)
    return report.write("throughput", text, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer executions and 3 repetitions (default 7)")
    parser.add_argument("--repeats", type=int, help="interleaved repetitions of each measurement")
    args = parser.parse_args()
    run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
