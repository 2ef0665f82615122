"""How much minimization shrinks the zoo's reproducers.

    python -m benchmarks.minimization [--quick] [--seeds 5] [--budget 50000] [--targets a,b]

For each zoo target and run seed, nnfuzz runs to the first failure with
minimization off; the failure is then minimized (what ``run`` does by
default and ``nnfuzz minimize`` does on a file) and its distance from its
seed measured before and after: L-inf, L2 and the number of values that
differ. Writes benchmarks/results/minimization[-quick].md with the median
ratio after/before of each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import nnfuzz
from nnfuzz.mutation import input_distance
from nnfuzz.replay import minimize_failure
from nnfuzz.minimizer import changed_values
from nnfuzz.target import load_target

from benchmarks import machine, report
from benchmarks.finding import MAX_SECONDS, TARGETS, ZOO

MEASURES = ("linf", "l2", "changed values")


def distances(failure: nnfuzz.Failure) -> dict[str, float]:
    return {"linf": input_distance(failure.inputs, failure.seed, "linf"),
            "l2": input_distance(failure.inputs, failure.seed, "l2"),
            "changed values": float(changed_values(failure.inputs, failure.seed))}


def measure(name: str, seed: int, budget: int) -> dict[str, object] | None:
    """Before/after distances of one run's first failure, or None if it found none."""
    target = load_target(ZOO / f"{name}.py")
    config = nnfuzz.FuzzConfig(runs=budget, max_time=MAX_SECONDS, seed=seed,
                               stop_on_failure=True, minimize=False)
    result = nnfuzz.fuzz_target(target, config)
    if not result.failures:
        return None
    failure = result.failures[0]
    start = time.perf_counter()
    smaller = minimize_failure(target, failure)
    seconds = time.perf_counter() - start
    return {"before": distances(failure), "after": distances(smaller), "seconds": seconds,
            "values": sum(t.numel() for t in failure.inputs)}


def ratio(after: float, before: float) -> float:
    return after / before if before > 0 else 1.0


def table(rows: dict[str, list[dict]]) -> list[str]:  # type: ignore[type-arg]
    lines = ["| target | failures | values per input | median L-inf after/before | median L2 "
             "after/before | median changed values before -> after | median seconds to minimize |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in rows.items():
        if not runs:
            lines.append(f"| {name} | 0 | | | | | |")
            continue
        medians = {m: statistics.median(ratio(r["after"][m], r["before"][m]) for r in runs)
                   for m in ("linf", "l2")}
        changed = (statistics.median(r["before"]["changed values"] for r in runs),
                   statistics.median(r["after"]["changed values"] for r in runs))
        lines.append(f"| {name} | {len(runs)} | {runs[0]['values']} | {medians['linf']:.3f} | "
                     f"{medians['l2']:.3f} | {changed[0]:.0f} -> {changed[1]:.0f} | "
                     f"{statistics.median(r['seconds'] for r in runs):.2f} |")
    every = [r for runs in rows.values() for r in runs]
    if every:
        overall = {m: statistics.median(ratio(r["after"][m], r["before"][m]) for r in every)
                   for m in MEASURES}
        lines += ["", f"Over all {len(every)} failures, median ratio after/before: "
                      f"L-inf {overall['linf']:.3f}, L2 {overall['l2']:.3f}, "
                      f"changed values {overall['changed values']:.3f}."]
    return lines


#: Budgets: (run seeds, executions per run).
FULL = (5, 50_000)
QUICK = (3, 10_000)


def run(quick: bool, names: list[str] | None = None, seeds: int | None = None,
        budget: int | None = None) -> Path:
    seeds = seeds or (QUICK if quick else FULL)[0]
    budget = budget or (QUICK if quick else FULL)[1]
    started, start = machine.provenance(), time.perf_counter()
    rows = {}
    for name in names or TARGETS:
        runs = [measure(name, seed, budget) for seed in range(seeds)]
        rows[name] = [r for r in runs if r is not None]
        print(f"{name}: {len(rows[name])} failure(s) minimized", flush=True)
    text = ["## Minimization: how much the zoo's reproducers shrink", "",
            report.command_line("minimization", quick, time.perf_counter() - start, started), "",
            f"The first failure of each run ({seeds} run seeds, budget {budget:,} executions, "
            "minimization off), then minimized as `run` does by default; distances from the "
            "failure's seed before and after.", "", *table(rows)]
    return report.write("minimization", "\n".join(text), quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} run seeds, budget {QUICK[1]:,}")
    parser.add_argument("--seeds", type=int, help=f"run seeds per target (default {FULL[0]})")
    parser.add_argument("--budget", type=int, help=f"executions per run (default {FULL[1]:,})")
    parser.add_argument("--targets", help="comma-separated zoo targets (default: all)")
    args = parser.parse_args()
    run(args.quick, args.targets.split(",") if args.targets else None, args.seeds, args.budget)


if __name__ == "__main__":
    main()
