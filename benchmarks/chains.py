"""The guided chains group: bugs at the end of a long chain of gradient steps.

    python -m benchmarks.chains [--quick] [--budget 20000] [--seeds 5] [--reference COMMIT]

The zoo's other bugs mostly fall to the edge operator in the first batch,
for nnfuzz and random mutation alike, so a change that loses the search's
ability to follow a gradient for many steps does not show there. The
targets of this group (benchmarks/zoo/chain_*.py) are found by neither the
edge operator nor random mutation within the budget (both are measured
here, so that this stays checked), and each needs a chain of steps the same
way: every hidden unit pushed dead (chain_std), a logit margin past
float32's underflow (chain_xent).

The table sets today's medians beside those of the previous run of this
benchmark (read from results/chains.json before it is rewritten) and of a
reference commit, d849d7d unless --reference names another, which is run
on the same targets with its own nnfuzz (a git worktree in a temporary
folder); a median more than twice either is flagged.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


from benchmarks import finding, finding_section, machine, report

#: (budget, run seeds) of a --quick and of a full run. Issue #30's bar: the chain_std
#: bug within 20,000 executions and the chain_xent bug within 2 minutes.
QUICK = (20_000, 3)
FULL = (20_000, 5)
MAX_SECONDS = 120.0
#: The commit before the bounded corpus and the grouped guided mutations, which found
#: bugs of this kind (issue #30); its medians are kept in chains.json once measured.
REFERENCE = "d849d7d"
#: A median more than this many times the previous run's or the reference's is flagged.
LOST_FACTOR = 2.0
NNFUZZ = "nnfuzz"
Outcome = tuple[int | None, float]


def searchers(target, budget: int) -> dict[str, Callable[[int], Outcome]]:  # type: ignore[no-untyped-def]
    search = finding.first_failure_nnfuzz
    return {
        NNFUZZ: lambda s: search(target, budget, s, True, max_seconds=MAX_SECONDS),
        "nnfuzz, no descent walks":
            lambda s: search(target, budget, s, True, descent=False, max_seconds=MAX_SECONDS),
        "random mutation": lambda s: search(target, budget, s, False, max_seconds=MAX_SECONDS),
        "random mutation, no edge operator":
            lambda s: search(target, budget, s, False, edges=False, max_seconds=MAX_SECONDS),
    }


def median_execs(outcomes: list[Outcome], budget: int) -> float:
    return statistics.median(found if found is not None else budget for found, _ in outcomes)


#: Run by --reference in a subprocess whose nnfuzz is the commit's: only the API that every
#: commit since the zoo has (FuzzConfig's runs, max_time, seed, stop_on_failure, minimize).
_AT_COMMIT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import nnfuzz
from nnfuzz.target import load_target
path, budget, seeds, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
outcomes = []
for seed in range(seeds):
    start = time.perf_counter()
    config = nnfuzz.FuzzConfig(runs=budget, max_time=seconds, seed=seed, stop_on_failure=True,
                               minimize=False)
    result = nnfuzz.fuzz_target(load_target(path), config)
    found = int(result.failures[0].metadata["found_after_execs"]) if result.failures else None
    outcomes.append((found, time.perf_counter() - start))
print(json.dumps(outcomes))
"""


def at_commit(commit: str, names: list[str], budget: int, seeds: int) -> dict[str, list[Outcome]]:
    """nnfuzz as of ``commit`` (checked out in a temporary git worktree) on today's targets."""
    repo = finding.ZOO.parent.parent
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
        try:
            outcomes = {}
            for name in names:
                done = subprocess.run(
                    [sys.executable, "-c", _AT_COMMIT, str(finding.ZOO / f"{name}.py"),
                     str(budget), str(seeds), str(MAX_SECONDS)],
                    env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True,
                    capture_output=True, text=True)
                outcomes[name] = [tuple(o) for o in json.loads(done.stdout.splitlines()[-1])]
                print(f"| {name} | nnfuzz at {commit} | "
                      f"{finding.summary(outcomes[name], budget)} |", flush=True)
            return outcomes  # type: ignore[return-value]
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                           capture_output=True)


def stored(quick: bool) -> dict:  # type: ignore[type-arg]
    path = report.result_path("chains", quick, ".json")
    return json.loads(path.read_text()) if path.is_file() else {}


def compare(now: float, before: float | None, label: str) -> str:
    if before is None:
        return "—"
    flag = " **lost**" if now > LOST_FACTOR * before else ""
    return f"{before:,.0f} ({label}){flag}"


def markdown(outcomes: dict[str, dict[str, list[Outcome]]], budget: int, seeds: int,
             previous: dict, reference: dict, quick: bool, wall_s: float,  # type: ignore[type-arg]
             started: str) -> str:
    rows = []
    for name, by_searcher in outcomes.items():
        for searcher, results in by_searcher.items():
            now = median_execs(results, budget)
            cells = [name, searcher, finding.summary(results, budget)]
            if searcher == NNFUZZ:
                before = previous.get("medians", {}).get(name)
                cells += [compare(now, before, previous.get("commit", "?")),
                          compare(now, reference.get("medians", {}).get(name),
                                  reference.get("commit", REFERENCE))]
            else:
                cells += ["", ""]
            rows.append(" | ".join(cells))
    lost = [name for name, by in outcomes.items()
            for before in (previous.get("medians", {}).get(name),
                           reference.get("medians", {}).get(name))
            if before is not None and median_execs(by[NNFUZZ], budget) > LOST_FACTOR * before]
    return "\n".join([
        "## Guided chains: bugs at the end of a long chain of gradient steps", "",
        report.command_line("chains", quick, wall_s, started), "",
        "The zoo targets `chain_*.py`: found by neither the edge operator nor random mutation "
        "within the budget, each needing many steps the same way (every hidden unit dead; a "
        "logit margin past float32's underflow). nnfuzz's median beside the previous run's "
        "and the reference commit's, on the same targets and budget; more than "
        f"{LOST_FACTOR:g}x either is flagged **lost**.", "",
        f"Budget {budget:,} executions and {MAX_SECONDS:g} s per search, run seeds "
        f"0..{seeds - 1}; a search that finds nothing counts as the budget.", "",
        "| target | searcher | found | execs to first failure, median (min–max) "
        "| seconds, median | previous run's median | reference's median |",
        "|---|---|---|---|---|---|---|",
        *(f"| {row} |" for row in rows), "",
        f"- Lost against the previous run or the reference: {', '.join(sorted(set(lost))) or 'none'}.",
    ])


def run(quick: bool, budget: int | None = None, seeds: int | None = None,
        reference_commit: str | None = None) -> Path:
    default_budget, default_seeds = QUICK if quick else FULL
    budget, seeds = budget or default_budget, seeds or default_seeds
    started, start = machine.provenance(), time.perf_counter()
    before = stored(quick)
    reference = before.get("reference", {})
    names = list(finding.CHAIN_TARGETS)
    if reference_commit is not None or reference.get("budget") != budget:
        commit = reference_commit or reference.get("commit", REFERENCE)
        measured = at_commit(commit, names, budget, seeds)
        reference = {"commit": commit, "budget": budget,
                     "medians": {n: median_execs(o, budget) for n, o in measured.items()}}
    outcomes = finding_section.search_zoo(names, budget, seeds, searchers)
    previous = before if before.get("budget") == budget else {}
    text = markdown(outcomes, budget, seeds, previous, reference, quick,
                    time.perf_counter() - start, started)
    path = report.write("chains", text, quick)
    report.result_path("chains", quick, ".json").write_text(json.dumps({
        "commit": machine.commit(), "budget": budget, "reference": reference,
        "medians": {n: median_execs(by[NNFUZZ], budget) for n, by in outcomes.items()},
    }, indent=1) + "\n")
    return path


def main() -> None:
    parser = finding_section.search_options(__doc__.splitlines()[0], QUICK, FULL)
    parser.add_argument("--reference", help="measure the reference again at this commit "
                                             f"(default: the stored one, {REFERENCE} at first)")
    args = finding_section.parsed(parser)
    run(args.quick, args.budget, args.seeds, args.reference)


if __name__ == "__main__":
    main()
