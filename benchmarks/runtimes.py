"""Deployment runtimes as disagree's reference: speed and disagreements in a fixed budget.

    python -m benchmarks.runtimes [--quick] [--seconds 30]

For the zoo's CNN (digits28_crop's model), an LSTM over packed sequences and a
small nn.TransformerEncoder classifier (benchmarks/architectures.py): the eager
model fuzzed with ``--objective disagree`` against each runtime (torch.compile,
torch.export, ONNX Runtime) for the same wall-clock budget, next to the eager
model fuzzed with the default objectives and no reference. Reported: the
seconds the conversion took (in the run, before the first batch), executions
per second over the budget, and the disagreements found (distinct signatures,
with the first one's detail). A model a runtime cannot convert is a row that
says why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nnfuzz
from benchmarks import machine, report
from benchmarks.architectures import ARCHITECTURES
from benchmarks.finding import ZOO
from nnfuzz.objectives import context_for
from nnfuzz.target import in_memory

KINDS = ("compile", "export", "onnx")


def models() -> list[tuple[str, Any, Any, Any]]:
    """(name, model, seeds, bounds) of each model measured."""
    cnn = nnfuzz.load_target(ZOO / "digits28_crop.py")
    chosen = [("zoo CNN (digits28_crop)", cnn.model, cnn.seeds[0], cnn.bounds)]
    for architecture in ARCHITECTURES:
        if architecture.name in ("lstm", "transformer_encoder"):
            chosen.append((architecture.name, architecture.build(), architecture.seeds(),
                           architecture.bounds))
    return chosen


def measure(model: Any, seeds: Any, bounds: Any, kind: str | None,
            seconds: float) -> list[object]:
    """[conversion s, execs/s, disagreements, first detail] of one budget."""
    conversion = 0.0
    if kind is not None:
        start = time.perf_counter()
        try:
            context_for(in_memory(model, seeds, bounds=bounds), kind)
        except nnfuzz.NnfuzzError as error:
            return ["", "", "not convertible", str(error)[:160]]
        conversion = time.perf_counter() - start
    options: dict[str, Any] = {"reference": kind, "objectives": ["disagree"]} if kind else {}
    try:
        result = nnfuzz.fuzz(model, seeds, bounds=bounds, max_time=seconds + conversion, seed=0,
                             **options)
    except nnfuzz.NnfuzzError as error:  # e.g. every seed already disagrees
        return [f"{conversion:.1f}", "", "refused", str(error)[:160]]
    fuzzing = max(result.elapsed_s - conversion, 1e-9)
    first = result.failures[0].detail[:120] if result.failures else ""
    return [f"{conversion:.1f}" if kind else "", f"{result.execs / fuzzing:,.0f}",
            len(result.failures), first]


def summary(rows: list[list[object]]) -> str:
    """What the table says about the runtimes, in a sentence."""
    runtime_rows = [row for row in rows if row[1] in KINDS]
    disagreeing = [f"{row[0]} with {row[1]}" for row in runtime_rows
                   if isinstance(row[4], int) and row[4] > 0]
    unconverted = [f"{row[0]} with {row[1]}" for row in runtime_rows if not isinstance(row[4], int)]
    found = (f"Disagreements: {', '.join(disagreeing)}." if disagreeing else
             "No runtime disagreed with the eager model, or raised where it did not, within the "
             "budget.")
    return found + (f" Not converted: {', '.join(unconverted)}." if unconverted else "")


def run(quick: bool, seconds: float | None = None) -> Path:
    seconds = seconds or (10.0 if quick else 30.0)
    started, start = machine.provenance(), time.perf_counter()
    rows = []
    for name, model, seeds, bounds in models():
        for kind in (None, *KINDS):
            row = [name, kind or "none (eager, default objectives)",
                   *measure(model, seeds, bounds, kind, seconds)]
            rows.append(row)
            print("| " + " | ".join(map(str, row)) + " |", flush=True)
    text = "\n".join([
        "## Runtimes: torch.compile, torch.export and ONNX Runtime as disagree's reference", "",
        report.command_line("runtimes", quick, time.perf_counter() - start, started), "",
        f"Each model fuzzed for {seconds:g} s after the conversion (run seed 0), with "
        "`--objective disagree` against the runtime, or with the default objectives and no "
        "reference (the first row of each model). Conversion: seconds to build the runtime "
        "once (torch.compile compiles lazily: its first batches are slow instead). "
        "Found: distinct failure signatures (for a runtime: disagreements, with float32-kernel "
        "tolerances, atol = rtol = 1e-4).", "",
        report.table(["model", "reference", "conversion s", "execs/s", "found", "first one"],
                     rows), "", summary(rows)])
    return report.write("runtimes", text, quick)


def main() -> None:
    report.seconds_main(__doc__, run, 30)


if __name__ == "__main__":
    main()
