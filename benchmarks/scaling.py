"""Executions per second with 1 and 2 workers, and through Ray with 2 local actors.

    python -m benchmarks.scaling [--quick] [--seconds 40] [--target digits_std]

Each configuration is a real ``nnfuzz run`` (a subprocess, as a user runs
it) on a zoo target for a fixed time. The rate is the steady one, read from
stats.jsonl: executions between the first record with executions and the
last, over the seconds between them, so that start-up (spawning workers,
starting Ray) does not count. Scaling efficiency = rate with N workers /
(N x rate with one process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, report
from benchmarks.finding import ZOO

#: (label, extra options, workers)
CONFIGURATIONS = (
    ("1 process", (), 1),
    ("2 workers (processes)", ("--workers", "2"), 2),
    ("2 Ray actors (--ray local)", ("--workers", "2", "--ray", "local"), 2),
)


def steady_rate(stats: Path) -> tuple[float, int]:
    """(executions per second between the first and last records with executions, total)."""
    records = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    running = [r for r in records if r["execs"] > 0]
    if len(running) < 2:
        return 0.0, running[-1]["execs"] if running else 0
    first, last = running[0], running[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    return (last["execs"] - first["execs"]) / seconds if seconds > 0 else 0.0, last["execs"]


def measure(target: str, options: tuple[str, ...], seconds: float) -> tuple[float, int, float]:
    """(steady execs/s, executions, wall seconds); RuntimeError with nnfuzz's error if it failed."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nnfuzz", "run", str(ZOO / f"{target}.py"),
                               "--out", str(out), "--max-time", str(seconds), *options],
                              capture_output=True, text=True, timeout=seconds + 300,
                              env={**os.environ, "RAY_DISABLE_USAGE_STATS": "1"})
        wall = time.perf_counter() - start
        if not (out / "stats.jsonl").exists():
            said = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
            raise RuntimeError(said[-1] if said else f"nnfuzz exited {done.returncode}")
        rate, execs = steady_rate(out / "stats.jsonl")
    return rate, execs, wall


def run(quick: bool, seconds: float | None = None, target: str = "digits_std") -> Path:
    seconds = seconds or (15.0 if quick else 40.0)
    started, start = machine.provenance(), time.perf_counter()
    rows, base = [], None
    for label, options, workers in CONFIGURATIONS:
        try:
            rate, execs, wall = measure(target, options, seconds)
        except RuntimeError as error:  # e.g. Ray is not installed: say so in the table
            rows.append([label, f"not measured: {error}", "", "", "", ""])
            print(f"{label}: not measured: {error}", flush=True)
            continue
        base = base or rate
        efficiency = rate / (workers * base) if base else 0.0
        rows.append([label, f"{rate:,.0f}", f"{rate / base:.2f}" if base else "?",
                     f"{efficiency:.2f}", f"{execs:,}", f"{wall:.0f}"])
        print(f"{label}: {rate:,.0f} execs/s (x{rate / base:.2f}), {wall:.0f} s wall", flush=True)
    text = "\n".join([
        "## Scaling: workers and Ray actors on this machine", "",
        report.command_line("scaling", quick, time.perf_counter() - start, started), "",
        f"`nnfuzz run benchmarks/zoo/{target}.py --max-time {seconds:.0f}` with each "
        "configuration, as a subprocess. Rate: the steady executions per second from "
        "stats.jsonl (start-up excluded). One process uses both cores through torch's threads; "
        "each of 2 workers gets one. Efficiency = rate / (workers × the one-process rate).", "",
        report.table(["configuration", "execs/s", "× one process", "efficiency",
                      "execs in all", "wall s"], rows)])
    return report.write("scaling", text, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s per configuration")
    parser.add_argument("--seconds", type=float, help="seconds per configuration (default 40)")
    parser.add_argument("--target", default="digits_std", help="zoo target")
    args = parser.parse_args()
    run(args.quick, args.seconds, args.target)


if __name__ == "__main__":
    main()
