"""Where a fuzz run's time goes: pyinstrument profiles of nnfuzz.fuzz on fixed workloads.

    python -m benchmarks.profile loss          # TensorFuzz's MLP, one seed image, the loss objective
    python -m benchmarks.profile small-cnn     # the throughput section's CNN, batch 100
    python -m benchmarks.profile tiny-mlp      # the throughput section's MLP, batch 100

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=tuple(WORKLOADS))
    parser.add_argument("--runs", type=int, default=20_000, help="executions (default 20,000)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    args = parser.parse_args()
    text = profile(args.workload, args.runs, args.batch)
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.batch == 100 else f"-batch{args.batch}"
    path = report.RESULTS / f"profile-{args.workload}{suffix}.txt"
    path.write_text(text + "\n" + machine.load_line(text) + "\n")
    print(text)
    print(f"wrote {path.relative_to(report.BENCHMARKS.parent)}")


if __name__ == "__main__":
    main()
