"""Precision and execution paths as disagree's reference, on the real architectures.

    python -m benchmarks.precision [--quick] [--seconds 60]

Each model of the "real architectures" section (benchmarks/architectures.py) is fuzzed
with ``--objective disagree`` against each precision and path reference (the model under
``torch.autocast`` in bf16 and fp16, with the MHA fast path off, with SDPA forced to its
math backend, with deterministic algorithms; ``no-tf32`` where CUDA is at hand) for the
same wall-clock budget, after one run with the default objectives and no reference (the
eager row, whose executions per second the others are compared with). Reported per run:
executions per second and their ratio to the eager run's, the failure signatures found
(disagreements, and ``nonfinite`` on the reference's side), the float64 arbiter's verdicts
over them, and the first one's line. A path the model never takes is a row that says so
(the error the user would get), not a silent pass.

The first reproducer of each run that found something is kept under
``benchmarks/results/precision/<model>-<kind>/`` so that it can be replayed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

import nnfuzz
from benchmarks import machine, report
from benchmarks.architectures import ARCHITECTURES
from nnfuzz.errors import UsageError

KINDS = ("autocast-bf16", "autocast-fp16", "fastpath-off", "sdpa-math", "deterministic", "no-tf32")
KEPT = Path(__file__).parent / "results" / "precision"


def measure(name: str, model: Any, seeds: Any, bounds: Any, kind: str | None,
            seconds: float) -> tuple[list[object], float]:
    """[execs/s, found, arbiter verdicts, first one] of one budget, and its execs/s."""
    options: dict[str, Any] = {"reference": kind, "objectives": ["disagree"]} if kind else {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = nnfuzz.fuzz(model, seeds, bounds=bounds, max_time=seconds, seed=0,
                                 batch_size=100, stop_on_failure=False, minimize=False,
                                 out=Path(folder), **options)
        except nnfuzz.NnfuzzError as error:
            # A usage error: a path the model never takes, a missing CUDA. Otherwise the
            # seeds themselves already fail against the reference: a finding before the search.
            said = "not applicable" if isinstance(error, UsageError) else "every seed fails"
            return ["", said, "", str(error).splitlines()[0][:240]], 0.0
        rate = result.execs / max(result.elapsed_s, 1e-9)
        if kind and result.failures:
            keep(name, kind, result.failures[0])
    verdicts = Counter(f.metadata.get("arbiter", "") or f"({f.objective})" for f in result.failures)
    said = "; ".join(f"{verdict} x{count}" for verdict, count in verdicts.most_common())
    first = result.failures[0].detail[:160] if result.failures else ""
    return [f"{rate:,.0f}", len(result.failures), said, first], rate


def keep(name: str, kind: str, failure: Any) -> None:
    """The first reproducer of a run, kept beside the results."""
    folder = KEPT / f"{name}-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if failure.path is not None and Path(failure.path).exists():
        shutil.copy(failure.path, folder / Path(failure.path).name)


def written_up() -> list[str]:
    """What the runs found, written up by hand with a script for each (results/precision/
    NOTES.md): kept in the section, since the table alone does not say what it means."""
    notes = KEPT / "NOTES.md"
    return [notes.read_text().strip("\n")] if notes.is_file() else []


def run(quick: bool, seconds: float | None = None) -> Path:
    seconds = seconds or (10.0 if quick else 60.0)
    started, start = machine.provenance(), time.perf_counter()
    rows = []
    for architecture in ARCHITECTURES:
        model, seeds = architecture.build(), architecture.seeds()
        eager_cells, eager = measure(architecture.name, model, seeds, architecture.bounds, None,
                                     seconds)
        rows.append([architecture.name, "none (eager, default objectives)", eager_cells[0], "1.00",
                     *eager_cells[1:]])
        print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
        for kind in KINDS:
            if kind == "no-tf32" and not torch.cuda.is_available():
                continue
            cells, rate = measure(architecture.name, model, seeds, architecture.bounds, kind,
                                  seconds)
            rows.append([architecture.name, kind, cells[0],
                         f"{rate / eager:.2f}" if rate and eager else "", *cells[1:]])
            print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
    text = "\n".join([
        "## Precision and paths: autocast, the MHA fast path, SDPA, deterministic algorithms", "",
        report.command_line("precision", quick, time.perf_counter() - start, started), "",
        f"Each model fuzzed for {seconds:g} s (run seed 0, batches of 100, no minimizing): once "
        "with the default objectives and no reference (the eager row), then with "
        "`--objective disagree` "
        "against each reference kind, at its default tolerances. *vs eager*: executions per "
        "second against the eager row's. *Found*: distinct failure signatures. *Arbiter*: the "
        "float64 verdicts over them. no-tf32 needs CUDA: "
        + ("measured." if torch.cuda.is_available() else "not measured (no GPU here)."), "",
        report.table(["model", "reference", "execs/s", "vs eager", "found", "arbiter",
                      "first one"], rows), "", *written_up()])
    return report.write("precision", text, quick)


def main() -> None:
    report.seconds_main(__doc__, run, 60)


if __name__ == "__main__":
    main()
