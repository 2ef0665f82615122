"""Executions and seconds to the first failure: nnfuzz against random search.

    python -m benchmarks.finding [--budget 50000] [--seeds 5] [--targets digits_std,...]

For each zoo target (every benchmarks/zoo/*.py but the helpers) and run
seed, the searchers get the same budget of executions: nnfuzz (coverage
feedback), random mutation (the same operators, always applied to a seed, no
feedback), both again without the edge operator (which reaches a constant or
all-padding input in one step: what the feedback adds to the other operators),
uniform sampling inside BOUNDS and uniform noise around the seeds.
All of them check the target's own objectives, as ``nnfuzz run`` would:
``loss`` where it defines loss() (each example carrying its seed's label, or
a random seed's for uniform samples), ``disagree`` where it defines
reference(). A bug not found within the budget counts as the budget. Writes a
Markdown table to benchmarks/results/finding.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

import nnfuzz
from nnfuzz.execution import Execution, Executor
from nnfuzz.objectives import build_objectives, context_for, judge
from nnfuzz.target import Target, load_target

ZOO = Path(__file__).resolve().parent / "zoo"
RESULTS = Path(__file__).resolve().parent / "results"
#: The guided chains group (benchmarks/chains.py): bugs at the end of a long chain of
#: gradient steps, which neither the edge operator nor random mutation reaches.
CHAIN_PREFIX = "chain_"
#: Every other zoo target: the files of benchmarks/zoo/ but its helpers (_zoo.py) and build.py.
TARGETS = tuple(sorted(path.stem for path in ZOO.glob("*.py")
                       if not path.name.startswith(("_", "build", CHAIN_PREFIX))))
CHAIN_TARGETS = tuple(sorted(path.stem for path in ZOO.glob(f"{CHAIN_PREFIX}*.py")))
#: Most seconds any one search may take, as issue #2 asks (5 minutes).
MAX_SECONDS = 300.0


def first_failure_nnfuzz(target: nnfuzz.Target, budget: int, seed: int, feedback: bool,
                         edges: bool = True, descent: bool = True,
                         max_seconds: float = MAX_SECONDS) -> tuple[int | None, float]:
    """nnfuzz (``feedback``) or random mutation (none), with or without the edge operator
    and descent walks."""
    start = time.perf_counter()
    # Not minimized: the seconds are those to find the failure, not to shrink it too.
    config = nnfuzz.FuzzConfig(runs=budget, max_time=max_seconds, seed=seed, edges=edges,
                               descent=descent, stop_on_failure=True, feedback=feedback,
                               minimize=False)
    result = nnfuzz.fuzz_target(target, config)
    found = int(result.failures[0].metadata["found_after_execs"]) if result.failures else None
    return found, time.perf_counter() - start


#: Half-width of "uniform noise around the seeds", as a share of the bounds' width.
NOISE_SHARE = 0.25


def first_failure_uniform(target: nnfuzz.Target, budget: int, seed: int, around_seeds: bool,
                          batch: int = 100) -> tuple[int | None, float]:
    """Uniform samples inside BOUNDS, or uniform noise around the seeds, clipped
    (random tokens for integer inputs either way)."""
    start = time.perf_counter()
    domain = target.domain()
    executor = Executor(target.model, source=target.path, names=target.input_names)
    objectives = build_objectives(None, context_for(target))
    generator = torch.Generator().manual_seed(seed)
    count = len(target.seeds[0])
    execs = 0
    try:
        while execs < budget:
            # The seed each example is drawn around, and whose label it carries.
            picks = (torch.randint(count, (batch,), generator=generator)
                     if around_seeds or target.labels is not None else None)
            inputs = []
            for field, seeds in zip(domain.fields, target.seeds):
                shape = (batch, *field.shape)
                if field.is_integer:
                    inputs.append(torch.randint(int(field.low), int(field.high) + 1, shape,
                                                generator=generator).to(field.dtype))
                elif around_seeds:
                    noise = (2 * torch.rand(shape, generator=generator) - 1) * NOISE_SHARE * field.width
                    inputs.append((seeds[picks] + noise).clamp(field.low, field.high).to(field.dtype))
                else:
                    inputs.append((field.low + field.width * torch.rand(shape, generator=generator))
                                  .to(field.dtype))
            execution = labelled(executor.run(tuple(inputs)), target, picks)
            execs += batch
            if judge(objectives, execution).findings:
                return execs, time.perf_counter() - start
    finally:
        executor.close()
    return None, time.perf_counter() - start


def labelled(execution: Execution, target: Target, picks: torch.Tensor | None) -> Execution:
    """Each example with the label of the seed it was drawn for, when the target has labels."""
    if target.labels is not None and picks is not None:
        device = execution.coverage.device
        return replace(execution, labels=target.labels[picks].to(device),
                       has_label=torch.ones(len(picks), dtype=torch.bool, device=device))
    return execution


def summary(results: list[tuple[int | None, float]], budget: int) -> str:
    execs = [found if found is not None else budget for found, _ in results]
    seconds = [s for _, s in results]
    found = sum(1 for f, _ in results if f is not None)
    return (f"{found}/{len(results)} | {statistics.median(execs):,.0f} "
            f"({min(execs):,}–{max(execs):,}) | {statistics.median(seconds):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    lines = [
        f"Budget {args.budget:,} executions per search, run seeds 0..{args.seeds - 1}; "
        "a search that finds nothing counts as the budget.",
        "",
        "| target | searcher | found | execs to first failure, median (min–max) | seconds, median |",
        "|---|---|---|---|---|",
    ]
    for name in args.targets.split(","):
        target = load_target(ZOO / f"{name}.py")
        searchers = {
            "nnfuzz": lambda s: first_failure_nnfuzz(target, args.budget, s, True),
            "random mutation": lambda s: first_failure_nnfuzz(target, args.budget, s, False),
            "uniform in bounds": lambda s: first_failure_uniform(target, args.budget, s, False),
            f"uniform noise ±{NOISE_SHARE:g}×width around the seeds":
                lambda s: first_failure_uniform(target, args.budget, s, True),
        }
        for searcher, search in searchers.items():
            row = summary([search(seed) for seed in range(args.seeds)], args.budget)
            lines.append(f"| {name} | {searcher} | {row} |")
            print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "finding.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
