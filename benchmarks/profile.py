"""Where a fuzz run's time goes: pyinstrument profiles of nnfuzz.fuzz on fixed workloads.

    python -m benchmarks.profile loss          # TensorFuzz's MLP, one seed image, the loss objective
    python -m benchmarks.profile small-cnn     # the throughput section's CNN, batch 100
    python -m benchmarks.profile tiny-mlp      # the throughput section's MLP, batch 100
    python -m benchmarks.profile forward       # the small CNN's instrumented forward, part by part

Each writes results/profile-<workload>.txt (pyinstrument's call tree of the fuzz call
alone: building the model and importing torch are outside it) and prints it. A
sampling profiler slows the code it watches far less than cProfile, so the shares
hold for the unprofiled run; the run's executions per second is printed beside it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import torch

import nnfuzz
from benchmarks import machine, report, throughput


@dataclass(frozen=True)
class Workload:
    describe: str
    #: The model, its seeds and the keywords of nnfuzz.fuzz.
    build: Callable[[], tuple[torch.nn.Module, torch.Tensor, dict[str, object]]]


def loss_workload() -> tuple[torch.nn.Module, torch.Tensor, dict[str, object]]:
    """The bar's 784-200-100-10 MLP and one test image, with a loss that cannot break (the
    stable cross-entropy): the run measures the loss path's steady cost, not a lucky find."""
    from benchmarks.tensorfuzz.bar import BAR_STEPS, bar_model, digits_28
    from benchmarks.tensorfuzz.common import split

    model, _, _ = bar_model(BAR_STEPS)
    _, _, images, labels = split(*digits_28())

    def stable(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, target, reduction="none")

    return model, images[:1], dict(targets=labels[:1], loss=stable, objectives=["loss"],
                                   bounds=(-1.0, 1.0))


def throughput_workload(name: str) -> Callable[[], tuple[torch.nn.Module, torch.Tensor,
                                                           dict[str, object]]]:
    def build() -> tuple[torch.nn.Module, torch.Tensor, dict[str, object]]:
        model, seeds = throughput.build(name)
        return model, seeds, dict(objectives=["nonfinite"], bounds=(0.0, 1.0))
    return build


WORKLOADS = {
    "loss": Workload("TensorFuzz's 784-200-100-10 MLP, one seed image, objectives=['loss'] "
                     "(a stable cross-entropy), batch 100", loss_workload),
    "small-cnn": Workload("the throughput section's small CNN, 32 seeds, objectives=['nonfinite'], "
                          "batch 100", throughput_workload("small CNN 28x28")),
    "tiny-mlp": Workload("the throughput section's tiny MLP, 32 seeds, objectives=['nonfinite'], "
                         "batch 100", throughput_workload("tiny MLP 64-32-10")),
}


def profile(name: str, runs: int, batch: int = 100) -> str:
    from pyinstrument import Profiler

    torch.set_num_threads(1)
    workload = WORKLOADS[name]
    model, seeds, options = workload.build()
    started = machine.provenance()
    profiler = Profiler(interval=0.0005)
    start = time.perf_counter()
    with profiler:
        result = nnfuzz.fuzz(model, seeds, runs=runs, batch_size=batch, seed=0, **options)
    seconds = time.perf_counter() - start
    tree = profiler.output_text(unicode=True, color=False, show_all=False)
    return (f"python -m benchmarks.profile {name} --runs {runs} --batch {batch}: "
            f"{workload.describe.replace('batch 100', f'batch {batch}')}.\n"
            f"{result.execs:,} executions in {seconds:.2f} s profiled "
            f"({result.execs / seconds:,.0f} executions/s under the profiler); {started}.\n"
            f"{tree}")


#: The forward workload's parts, each timed in CPU seconds (one torch thread: the process's
#: own work, not the other processes' on a loaded machine), interleaved, median of REPEATS.
REPEATS = 9
PASSES = 30
#: What the torch profiler counts as the statistics' reductions (reductions.reduce, the
#: ReLU's largest and smallest values from its input's) rather than the model's own ops.
REDUCTION_OPS = ("aten::sum", "aten::linalg_vector_norm", "aten::amax", "aten::amin")


def forward(batch: int = 100) -> str:
    """Where the instrumented forward pass of the small CNN goes beyond the model's own: the
    model alone, with a process-wide hook that does nothing (PyTorch's dispatch of it), the
    executor's pass (its hook: reading, reducing), and Executor.run (with the batch's module
    statistics); then the torch profiler's ops of Executor.run."""
    import statistics as stats

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from nnfuzz import hooks
    from nnfuzz.execution import Executor

    torch.set_num_threads(1)
    started = machine.provenance()
    model, seeds = throughput.build("small CNN 28x28")
    x = torch.rand(batch, *seeds.shape[1:], generator=torch.Generator().manual_seed(2))
    executor = Executor(model)

    def plain() -> None:
        with torch.no_grad():
            model(x)

    def empty_hook() -> None:
        hooks.uninstall(executor._hook_function)
        hooks.install(_nothing)
        plain()
        hooks.uninstall(_nothing)
        hooks.install(executor._hook_function)

    def hooked() -> None:
        with torch.no_grad():
            executor._forward((x,))

    parts = {"the model alone (no hook)": plain, "+ a global hook that returns at once": empty_hook,
             "+ nnfuzz's hook (read each output, reduce it)": hooked,
             "+ the batch's module statistics (Executor.run)": lambda: executor.run((x,))}
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    for run in parts.values():
        run()
    for _ in range(REPEATS):
        for name, run in parts.items():
            start = time.process_time()
            for _ in range(PASSES):
                run()
            seconds[name].append((time.process_time() - start) / PASSES)
    ms = {name: 1e3 * stats.median(times) for name, times in seconds.items()}
    alone = ms["the model alone (no hook)"]
    lines, last = [], alone
    for name, value in ms.items():
        lines.append(f"| {name} | {value:.3f} | {value - last:+.3f} | {alone / value:.2f} |")
        last = value
    with torch_profile(activities=[ProfilerActivity.CPU]) as profiled:
        for _ in range(PASSES):
            executor.run((x,))
    events = profiled.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    reductions = sum(e.self_cpu_time_total for e in events if e.key in REDUCTION_OPS)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    ops = [f"| `{e.key}` | {e.count / PASSES:g} | {e.self_cpu_time_total / PASSES / 1e3:.3f} | "
           f"{e.self_cpu_time_total / total:.0%} |" for e in top]
    executor.close()
    return "\n".join([
        f"python -m benchmarks.profile forward --batch {batch}: the throughput section's small "
        f"CNN, one batch of {batch}; {started}.", "",
        f"CPU milliseconds per batch (time.process_time, one torch thread; median of {REPEATS} "
        f"interleaved repetitions of {PASSES} passes):", "",
        "| pass | ms per batch | added | model alone / this |", "|---|---|---|---|", *lines, "",
        f"torch.profiler over {PASSES} Executor.run calls (self CPU time per batch; the profiler "
        f"adds its own cost per op): the reductions ({', '.join(REDUCTION_OPS)}) take "
        f"{reductions / total:.0%}.", "",
        "| op | calls per batch | ms per batch | share |", "|---|---|---|---|", *ops])


def _nothing(*_args: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=(*WORKLOADS, "forward"))
    parser.add_argument("--runs", type=int, default=20_000, help="executions (default 20,000)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    args = parser.parse_args()
    text = (forward(args.batch) if args.workload == "forward"
            else profile(args.workload, args.runs, args.batch))
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.batch == 100 else f"-batch{args.batch}"
    path = report.RESULTS / f"profile-{args.workload}{suffix}.txt"
    path.write_text(text + "\n" + machine.load_line(text) + "\n")
    print(text)
    print(f"wrote {path.relative_to(report.BENCHMARKS.parent)}")


if __name__ == "__main__":
    main()
