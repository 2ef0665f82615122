"""Does ``--workers 2`` find what one process finds? The zoo, the same budget each way.

    python -m benchmarks.workers_finding [--quick] [--budget 20000] [--seeds 3]

For each zoo target and run seed, one process and two worker processes (the
library's ``WorkerPool``, what ``nnfuzz run --workers 2`` runs) get the same
budget of executions (``--runs``, shared out among the workers) and stop at
the first failure; with and without the edge operator, which reaches most of
the zoo's bugs in the first batch (without it, the coverage feedback and the
workers' exchange of corpus files do the work). Reported: how many runs found
a failure, the executions when the run stopped (all workers' together), and
the wall seconds, the workers' start-up included.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nnfuzz
from benchmarks import machine, report
from benchmarks.finding import TARGETS, ZOO
from nnfuzz.status import Reporter
from nnfuzz.drivers.processes import WorkerPool

#: Most seconds one search may take.
MAX_SECONDS = 120.0


def search(target: str, workers: int, budget: int, seed: int, edges: bool) -> tuple[bool, int, float]:
    """(found, executions at the stop, wall seconds) of one run into a fresh output folder."""
    loaded = nnfuzz.load_target(ZOO / f"{target}.py")
    config = nnfuzz.FuzzConfig(runs=budget, max_time=MAX_SECONDS, seed=seed, edges=edges,
                               stop_on_failure=True, minimize=False)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        if workers == 1:
            result = nnfuzz.fuzz_target(loaded, config, out=out)
        else:
            result = WorkerPool(loaded, config, out, None, workers, None, Reporter()).run()
    return bool(result.failures), result.execs, time.perf_counter() - start


def run(quick: bool, budget: int | None = None, seeds: int | None = None) -> Path:
    budget = budget or (10_000 if quick else 20_000)
    seeds = seeds or (1 if quick else 3)
    started, start = machine.provenance(), time.perf_counter()
    rows, totals = [], {}
    for target in TARGETS:
        for edges in (True, False):
            for workers in (1, 2):
                outcomes = [search(target, workers, budget, seed, edges) for seed in range(seeds)]
                found = sum(f for f, _, _ in outcomes)
                key = (edges, workers)
                totals[key] = totals.get(key, 0) + found
                rows.append([target, "yes" if edges else "no", workers, f"{found}/{seeds}",
                             f"{statistics.median(e for _, e, _ in outcomes):,.0f}",
                             f"{statistics.median(w for _, _, w in outcomes):.1f}"])
                print(f"{target} edges={edges} workers={workers}: {found}/{seeds}", flush=True)
    runs = len(TARGETS) * seeds
    summary = [[("with" if edges else "without") + " the edge operator", workers,
                f"{totals[(edges, workers)]}/{runs}"]
               for edges in (True, False) for workers in (1, 2)]
    text = "\n".join([
        "## Workers: does --workers 2 find what one process finds?", "",
        report.command_line("workers_finding", quick, time.perf_counter() - start, started), "",
        f"Every zoo target, run seeds 0..{seeds - 1}, a budget of {budget:,} executions "
        f"(`--runs`, shared out among the workers) and at most {MAX_SECONDS:.0f} s, stopping at "
        "the first failure, not minimized; one process against `--workers 2` (real spawned "
        "processes exchanging corpus files through OUT/corpus). Executions: all workers' "
        "together when the run stopped (a budget not spent is a failure found). Seconds: wall "
        "time, the workers' start-up (each imports torch and the target) included.", "",
        report.table(["searcher", "workers", "runs that found a failure"], summary), "",
        report.table(["target", "edge operator", "workers", "found", "execs at the stop, median",
                      "wall s, median"], rows)])
    return report.write("workers-finding", text, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 executions, one run seed")
    parser.add_argument("--budget", type=int, help="executions per search (default 20,000)")
    parser.add_argument("--seeds", type=int, help="run seeds per target (default 3)")
    args = parser.parse_args()
    run(args.quick, args.budget, args.seeds)


if __name__ == "__main__":
    main()
