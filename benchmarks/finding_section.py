"""The finding section: benchmarks/finding.py's searches over the zoo, with a plot.

    python -m benchmarks.finding_section [--quick] [--budget N] [--seeds K] [--targets a,b]

benchmarks/finding.py owns the searchers, the zoo targets it covers and the
table's format; this module picks the budget and the run seeds (--quick:
10,000 executions and 3 run seeds; full: 50,000 and 5), keeps every search's
number for the plot (median executions to the first failure per target and
searcher, log scale), and writes results/finding[-quick].md with a heading,
so that RESULTS.md can include it as it is.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

import nnfuzz
from benchmarks import finding, machine, report
from nnfuzz.target import load_target

#: (budget, run seeds) of a --quick and of a full run.
QUICK = (10_000, 3)
FULL = (50_000, 5)

Outcome = tuple[int | None, float]  # executions to the first failure (None: not found), seconds
NO_EDGES_NNFUZZ = "nnfuzz, no edge operator"
NO_EDGES_RANDOM = "random mutation, no edge operator"


def searchers(target: nnfuzz.Target, budget: int) -> dict[str, Callable[[int], Outcome]]:
    """The searchers of benchmarks/finding.py, by the names its table uses."""
    return {
        "nnfuzz": lambda s: finding.first_failure_nnfuzz(target, budget, s, True),
        "random mutation": lambda s: finding.first_failure_nnfuzz(target, budget, s, False),
        NO_EDGES_NNFUZZ: lambda s: finding.first_failure_nnfuzz(target, budget, s, True, False),
        NO_EDGES_RANDOM: lambda s: finding.first_failure_nnfuzz(target, budget, s, False, False),
        "uniform in bounds": lambda s: finding.first_failure_uniform(target, budget, s, False),
        f"uniform noise ±{finding.NOISE_SHARE:g}×width around the seeds":
            lambda s: finding.first_failure_uniform(target, budget, s, True),
    }


def search_zoo(names: list[str], budget: int, seeds: int,
               searchers_of: Callable[..., dict[str, Callable[[int], Outcome]]] | None = None,
               ) -> dict[str, dict[str, list[Outcome]]]:
    """{target: {searcher: [outcome per run seed]}}, printing each table row as it is done;
    ``searchers_of(target, budget)`` gives the searchers (default: this section's)."""
    outcomes: dict[str, dict[str, list[Outcome]]] = {}
    for name in names:
        target = load_target(finding.ZOO / f"{name}.py")
        outcomes[name] = {}
        for searcher, search in (searchers_of or searchers)(target, budget).items():
            outcomes[name][searcher] = [search(seed) for seed in range(seeds)]
            print(f"| {name} | {searcher} | "
                  f"{finding.summary(outcomes[name][searcher], budget)} |", flush=True)
    return outcomes


def plot(outcomes: dict[str, dict[str, list[Outcome]]], budget: int, quick: bool) -> str | None:
    """Grouped bars: median executions to the first failure, log scale; the budget is a line."""
    plt = report.pyplot()
    if plt is None:
        return None
    targets = list(outcomes)
    names = list(next(iter(outcomes.values())))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(targets) + 3), 4.5))
    width = 0.8 / len(names)
    lowest = budget
    for position, searcher in enumerate(names):
        runs = [outcomes[t][searcher] for t in targets]
        medians = [statistics.median(f if f is not None else budget for f, _ in r) for r in runs]
        lowest = min(lowest, *medians)
        xs = [i + (position - (len(names) - 1) / 2) * width for i in range(len(targets))]
        axes.bar(xs, medians, width, label=searcher)
        for x, median, results in zip(xs, medians, runs):  # how many runs found it
            found = sum(f is not None for f, _ in results)
            axes.text(x, median * 1.05, f"{found}/{len(results)}", ha="center", va="bottom",
                      fontsize=7)
    axes.axhline(budget, color="black", linestyle="--", linewidth=1)
    axes.text(len(targets) - 0.5, budget * 1.25, f"budget {budget:,} (not found)", ha="right",
              va="bottom", fontsize=8)
    axes.set_yscale("log")
    axes.set_ylim(10 ** math.floor(math.log10(max(lowest, 1)) - 0.3), budget * 2.5)
    axes.set_xticks(range(len(targets)), targets, rotation=20, ha="right")
    axes.set_ylabel("executions to the first failure (median)")
    seeds = len(outcomes[targets[0]][names[0]])
    axes.set_title(f"Executions to the first failure, median of {seeds} run seeds "
                   "(lower is better); k/n: runs that found one", fontsize=10)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return report.save_figure(figure, "finding", quick)


#: Issue #5's targets: nnfuzz needs at most this share of random search's executions
#: (median over the zoo), and finds every bug within this many seconds.
RATIO_TARGET = 0.1
SECONDS_TARGET = 300.0
#: The searchers that count as random search (the better of them, per target).
RANDOM_SEARCHERS = ("random mutation", "uniform in bounds")


def verdicts(outcomes: dict[str, dict[str, list[Outcome]]], budget: int) -> list[str]:
    """The issue's two finding targets, met or not and by how much."""
    def median(results: list[Outcome]) -> float:
        return statistics.median(f if f is not None else budget for f, _ in results)

    ratios = {name: median(by["nnfuzz"]) / min(median(by[s]) for s in RANDOM_SEARCHERS if s in by)
              for name, by in outcomes.items()}
    overall = statistics.median(ratios.values())
    worst = max(ratios, key=ratios.get)  # type: ignore[arg-type]
    feedback = {name: median(by[NO_EDGES_NNFUZZ]) / median(by[NO_EDGES_RANDOM])
                for name, by in outcomes.items() if NO_EDGES_NNFUZZ in by and NO_EDGES_RANDOM in by}
    found = [f for by in outcomes.values() for f, _ in by["nnfuzz"]]
    slowest = max(seconds for by in outcomes.values() for _, seconds in by["nnfuzz"])
    missed = sum(f is None for f in found)
    return [
        f"- nnfuzz's executions to the first failure over random search's (the better of "
        f"{' and '.join(RANDOM_SEARCHERS)}; not found = the budget, so random search's side "
        f"is a lower bound): median over the {len(ratios)} targets **{overall:.3f}** against "
        f"the target <= {RATIO_TARGET:g}: **{'met' if overall <= RATIO_TARGET else 'not met'}** "
        f"(highest: {worst}, {ratios[worst]:.2f}).",
        *([f"- Without the edge operator on either side (what coverage feedback adds to the "
           f"other operators): nnfuzz over random mutation, median over the {len(feedback)} "
           f"targets **{statistics.median(feedback.values()):.3f}**."] if feedback else []),
        f"- nnfuzz found the bug in {len(found) - missed} of {len(found)} runs; the slowest "
        f"took {slowest:.1f} s against the target of every bug within {SECONDS_TARGET:g} s: "
        f"**{'met' if not missed and slowest <= SECONDS_TARGET else 'not met'}**.",
    ]


def markdown(outcomes: dict[str, dict[str, list[Outcome]]], budget: int, seeds: int, quick: bool,
             wall_s: float, started: str, image: str | None) -> str:
    rows = [f"| {name} | {searcher} | {finding.summary(results, budget)} |"
            for name, by_searcher in outcomes.items() for searcher, results in by_searcher.items()]
    return "\n".join([
        report.FINDING_TITLE, "",
        report.command_line("finding_section", quick, wall_s, started),
        "", report.FINDING_DESCRIPTION, "",
        # The lines benchmarks/finding.py writes, so that both files read the same.
        f"Budget {budget:,} executions per search, run seeds 0..{seeds - 1}; "
        "a search that finds nothing counts as the budget.", "",
        "| target | searcher | found | execs to first failure, median (min–max) "
        "| seconds, median |",
        "|---|---|---|---|---|", *rows, "", *verdicts(outcomes, budget),
        *(["", image] if image else []),
    ])


def run(quick: bool, budget: int | None = None, seeds: int | None = None,
        targets: list[str] | None = None) -> Path:
    default_budget, default_seeds = QUICK if quick else FULL
    budget, seeds = budget or default_budget, seeds or default_seeds
    started, start = machine.provenance(), time.perf_counter()
    outcomes = search_zoo(targets or list(finding.TARGETS), budget, seeds)
    image = plot(outcomes, budget, quick)
    text = markdown(outcomes, budget, seeds, quick, time.perf_counter() - start, started, image)
    return report.write("finding", text, quick)


def search_options(description: str, quick: tuple[int, int],
                   full: tuple[int, int]) -> argparse.ArgumentParser:
    """The options every search benchmark takes: --quick, --budget, --seeds, --threads (set
    when the arguments are read, by :func:`parsed`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help=f"budget {quick[0]:,} and {quick[1]} run seeds "
                             f"(default: {full[0]:,} and {full[1]})")
    parser.add_argument("--budget", type=int, help="executions per search")
    parser.add_argument("--seeds", type=int, help="run seeds 0..K-1 per searcher")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    parser = search_options(__doc__.splitlines()[0], QUICK, FULL)
    parser.add_argument("--targets", help="comma-separated zoo targets "
                                          f"(default: {','.join(finding.TARGETS)})")
    args = parsed(parser)
    run(args.quick, args.budget, args.seeds, args.targets.split(",") if args.targets else None)


if __name__ == "__main__":
    main()
