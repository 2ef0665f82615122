"""Real architectures: nnfuzz's speed over the model's own, how its corpus grows, and
whether it finds anything, on models nobody here wrote (benchmarks/architectures.py).

    python -m benchmarks.real_architectures [--quick] [--seconds S] [--only resnet18,lstm]

For each model, in one process at the same torch threads: the model's own batched
forward (batches of 100 seeds, as nnfuzz runs them) against a fuzz run of S seconds
(--quick: 10, full: 60) with an output folder; the share of mutants kept in the
second half of the run (after warm-up), the corpus written per minute, the
coverage layer, and what was found. Writes results/real-architectures[-quick].md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

import nnfuzz
from benchmarks import machine, report
from benchmarks.architectures import ARCHITECTURES, Architecture
from nnfuzz.domain import as_named_inputs, call

#: Seconds of fuzzing per model, --quick and full.
QUICK_SECONDS, FULL_SECONDS = 10.0, 60.0
BATCH = 100
#: Forward passes timed for the model's own speed.
RAW_BATCHES = 5


def raw_execs_per_s(architecture: Architecture) -> float:
    """The model's own batched forward on its seeds, in inputs per second."""
    model = architecture.build().eval()
    seeds, names = as_named_inputs(architecture.seeds(), "seeds()")
    repeat = torch.arange(BATCH) % seeds[0].shape[0]
    batch = tuple(t[repeat] for t in seeds)
    with torch.no_grad():
        call(model, batch, names)  # warm-up
        start = time.perf_counter()
        for _ in range(RAW_BATCHES):
            call(model, batch, names)
    return RAW_BATCHES * BATCH / (time.perf_counter() - start)


def fuzz_for(architecture: Architecture, seconds: float, out: Path,
             runs: int | None = None) -> dict[str, object]:
    """One run of ``seconds`` (or ``runs`` executions first: what a test on a busy machine
    can count on) and what it did."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = nnfuzz.fuzz(architecture.build(), architecture.seeds(), bounds=architecture.bounds,
                             out=out, max_time=seconds, runs=runs, seed=0, batch_size=BATCH)
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    half = next((row for row in stats if row["elapsed_s"] >= seconds / 2), stats[0])
    last = stats[-1]
    late_execs = last["execs"] - half["execs"]
    files = list((out / "corpus").glob("*.safetensors"))
    megabytes = sum(path.stat().st_size for path in files) / 2**20
    record = json.loads((out / "run.json").read_text())
    return {
        "execs_per_s": result.execs / result.elapsed_s,
        "kept_late": (last["corpus"] - half["corpus"]) / late_execs if late_execs else 0.0,
        "mb_per_min": megabytes / (result.elapsed_s / 60),
        "files": len(files),
        "layer": ", ".join(record.get("coverage_layers") or []) or "output",
        "found": "; ".join(sorted({f.signature for f in result.failures})) or "clean",
        "warnings": [str(w.message) for w in said],
    }


def run(quick: bool, seconds: float | None = None, only: list[str] | None = None) -> Path:
    seconds = seconds or (QUICK_SECONDS if quick else FULL_SECONDS)
    started, start = machine.provenance(), time.perf_counter()
    rows, notes = [], []
    for architecture in ARCHITECTURES:
        if only and architecture.name not in only:
            continue
        try:
            raw = raw_execs_per_s(architecture)
        except ImportError as error:  # transformers: pip install -e '.[benchmarks]'
            rows.append([architecture.name, architecture.what,
                         f"not measured: {error.name} is not installed"] + [""] * 6)
            print(f"{architecture.name}: not measured: {error}", flush=True)
            continue
        folder = Path(tempfile.mkdtemp(prefix="nnfuzz-arch-"))
        try:
            measured = fuzz_for(architecture, seconds, folder / "out")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        rows.append([architecture.name, architecture.what, f"{raw:,.0f}",
                     f"{measured['execs_per_s']:,.0f}", f"{measured['execs_per_s'] / raw:.2f}",
                     f"{measured['kept_late']:.2%}", f"{measured['mb_per_min']:.1f}",
                     measured["layer"], measured["found"]])
        notes += [f"- {architecture.name}: {w}" for w in measured["warnings"]  # type: ignore[union-attr]
                  if "hardly varies" in w or "disagree" in w]
        print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
    text = "\n".join([
        "## Real architectures: speed, corpus growth and findings", "",
        report.command_line("real_architectures", quick, time.perf_counter() - start, started),
        "", f"Each model is fuzzed for {seconds:g} s (default objectives, run seed 0, batches of "
        f"{BATCH}) and its own batched forward is timed on the same machine and threads. *Kept, "
        "late*: the share of mutants added to the corpus in the second half of the run, after "
        "the threshold has adapted; *MB/min*: corpus files written per minute over the run.", "",
        report.table(["model", "what", "raw inputs/s", "nnfuzz execs/s", "ratio", "kept, late",
                      "MB/min", "coverage layer", "found"], rows),
        *(["", "Warnings the runs gave:", *notes] if notes else []),
    ])
    return report.write("real-architectures", text, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SECONDS:g} s per model (default {FULL_SECONDS:g})")
    parser.add_argument("--seconds", type=float, help="seconds of fuzzing per model")
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args.quick, args.seconds, args.only.split(",") if args.only else None)


if __name__ == "__main__":
    main()
