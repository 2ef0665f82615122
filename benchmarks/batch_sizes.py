"""Does a larger batch find bugs sooner? Executions and CPU seconds to the first failure by --batch-size.

    python -m benchmarks.batch_sizes [--sizes 100,256,1000] [--seeds 5] [--chain-seeds 10]

A larger batch spreads the loop's cost per batch over more inputs (the throughput
section), but the corpus grows once per batch, so a search may need more
executions. This runs every zoo target (with and without the edge operator) and
the guided chains (benchmarks/zoo/chain_*.py) at each size with the same run
seeds, budget 20,000 executions, minimization off, one torch thread, and
compares each size with batch 100 (nnfuzz's default) run by run. The CPU
seconds (time.process_time, set-up included) do not count other processes'
work, so a busy machine changes them less than wall-clock seconds. A failure
found in a batch counts the whole batch, so a bug found in the first batch
counts the batch size. Writes benchmarks/results/batch-sizes.md (a one-off
comparison for issue #29, not a section of ``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import nnfuzz
from benchmarks import finding, machine, report
from nnfuzz.target import load_target

BUDGET = 20_000
BASE = 100
#: (found after executions or None, CPU seconds) of one search.
Outcome = tuple[int | None, float]


def search(target: nnfuzz.Target, seed: int, batch: int, edges: bool) -> Outcome:
    config = nnfuzz.FuzzConfig(runs=BUDGET, max_time=120, seed=seed, stop_on_failure=True,
                               minimize=False, batch_size=batch, edges=edges)
    start = time.process_time()
    result = nnfuzz.fuzz_target(target, config)
    found = int(result.failures[0].metadata["found_after_execs"]) if result.failures else None
    return found, time.process_time() - start


def execs(outcome: Outcome) -> int:
    return outcome[0] if outcome[0] is not None else BUDGET


def cell(outcomes: list[Outcome]) -> str:
    found = sum(o[0] is not None for o in outcomes)
    return (f"{found}/{len(outcomes)}, {statistics.median(map(execs, outcomes)):,.0f}, "
            f"{statistics.median(o[1] for o in outcomes):.2f}")


def ratios(runs: dict[tuple[str, str], dict[int, list[Outcome]]], size: int, edge: str
           ) -> str:
    """Run by run against batch BASE: median and geometric mean of executions and CPU seconds."""
    pairs = [(b, s) for (_, e), by in runs.items() if e == edge
             for b, s in zip(by[BASE], by[size])]
    exec_ratios = [execs(s) / execs(b) for b, s in pairs]
    cpu_ratios = [s[1] / max(b[1], 1e-3) for b, s in pairs]
    return (f"executions {statistics.median(exec_ratios):.2f}x (geometric mean "
            f"{statistics.geometric_mean(exec_ratios):.2f}x), CPU seconds "
            f"{statistics.median(cpu_ratios):.2f}x ({statistics.geometric_mean(cpu_ratios):.2f}x)"
            f" over {len(pairs)} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,256,1000")
    parser.add_argument("--seeds", type=int, default=5, help="run seeds per zoo target")
    parser.add_argument("--chain-seeds", type=int, default=10, help="run seeds per chain target")
    args = parser.parse_args()
    sizes = sorted({BASE, *(int(s) for s in args.sizes.split(","))})
    torch.set_num_threads(1)
    started, start = machine.provenance(), time.perf_counter()
    plan = ([(name, "with", True, args.seeds) for name in finding.TARGETS]
            + [(name, "without", False, args.seeds) for name in finding.TARGETS]
            + [(name, "with", True, args.chain_seeds) for name in finding.CHAIN_TARGETS])
    runs: dict[tuple[str, str], dict[int, list[Outcome]]] = {}
    for name, edge, edges, seeds in plan:
        target = load_target(finding.ZOO / f"{name}.py")
        runs[(name, edge)] = {size: [search(target, seed, size, edges) for seed in range(seeds)]
                              for size in sizes}
        print(name, edge, {s: cell(o) for s, o in runs[(name, edge)].items()}, flush=True)
    heading = " | ".join(f"batch {size}" for size in sizes)
    lines = [
        "### Batch size and finding (issue #29)", "",
        f"`python -m benchmarks.batch_sizes --sizes {','.join(map(str, sizes))} --seeds "
        f"{args.seeds} --chain-seeds {args.chain_seeds}` — {time.perf_counter() - start:.0f} s "
        f"wall-clock; {started}.", "",
        __doc__.split("\n\n", 2)[2].replace("\n", " ").strip(), "",
        "Each cell: found / runs, median executions to the first failure (the budget where "
        "none), median CPU seconds.", "",
        f"| target | edge operator | {heading} |", "|---|---|" + "---|" * len(sizes),
        *(f"| {name} | {edge} | " + " | ".join(cell(by[size]) for size in sizes) + " |"
          for (name, edge), by in runs.items()), "",
    ]
    for size in sizes:
        if size != BASE:
            zoo = [f"{edge} the edge operator: {ratios({k: v for k, v in runs.items() if k[0] in finding.TARGETS}, size, edge)}"
                   for edge in ("with", "without")]
            chains = ratios({k: v for k, v in runs.items() if k[0] in finding.CHAIN_TARGETS},
                            size, "with")
            lines.append(f"- Batch {size} against {BASE}, the zoo {zoo[0]}; {zoo[1]}. "
                         f"The chains: {chains}.")
    lines += ["", machine.load_line(started)]
    path = report.RESULTS / "batch-sizes.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
