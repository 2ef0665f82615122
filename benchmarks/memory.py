"""Memory: what a long run holds beyond what it stores.

    python -m benchmarks.memory [--quick] [--seconds S] [--models mlp,cnn]

A nightly run keeps every input that gave new coverage and every coverage
vector, and nothing else should grow. For the tiny MLP and the small CNN of
benchmarks/throughput.py, each run in a fresh subprocess (so that nothing
else this process did counts), this measures the resident memory (RSS) of a
process that imported torch and nnfuzz and built the model (the baseline),
the peak RSS of the run (VmHWM; see peak_rss_bytes), RSS over time (VmRSS sampled in a
thread) and, at every status line, the corpus and coverage counts. The raw
bytes a run stores are its corpus inputs (numel times element size, summed)
plus its coverage vectors (count x dim x 4). Target: (peak - baseline) / raw
bytes <= 1.5. Full runs fuzz 10 minutes per model; --quick 20 s.

    python -m benchmarks.memory --child mlp --seconds 20 --json out.json

is the measured subprocess.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import machine, report

#: --child name -> benchmarks.throughput.MODELS name.
MODELS = {"mlp": "tiny MLP 64-32-10", "cnn": "small CNN 28x28", "mlp-flood": "tiny MLP 64-32-10"}
#: Options beyond nnfuzz's defaults, per --child name. The flooding run keeps nearly every
#: mutant (a fixed threshold far under the outputs' spacing), so both caps are reached within
#: a short run: the corpus's (10,000 inputs) and the novelty index's (here 16 MB).
OPTIONS: dict[str, dict[str, float]] = {"mlp-flood": {"threshold": 1e-3, "max_coverage_mb": 16.0}}
#: RSS growth is judged from this many seconds on: what the first batches allocate (torch's
#: and faiss's working memory, the first index) is a fixed cost, not memory that grows.
WARM_SECONDS = 2.0
#: Growth in raw stored bytes below this after warm-up is too little to judge a ratio by.
JUDGED_GROWTH = 1 << 20
FULL_SECONDS = 600.0
QUICK_SECONDS = 20.0
RATIO_TARGET = 1.5
#: Seconds between RSS samples.
SAMPLE_EVERY = 0.2
MIB = 2**20


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS: resident now; VmHWM: the most resident so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status: this benchmark needs Linux")


def rss_bytes() -> int:
    return status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """The most this process has had resident: VmHWM, not ``ru_maxrss``.

    Linux carries ``ru_maxrss`` over fork and exec, so a child started by a
    big parent (this harness, after the index benchmark) reports the parent's
    peak; VmHWM belongs to the child's own address space.
    """
    return status_bytes("VmHWM")


class RssSampler(threading.Thread):
    """Samples (seconds since ``start``, RSS bytes) until stopped."""

    def __init__(self, start: float) -> None:
        super().__init__(daemon=True)
        self.start_time = start
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY):
            self.samples.append((time.monotonic() - self.start_time, rss_bytes()))

    def stop(self) -> list[tuple[float, int]]:
        self.done.set()
        self.join()
        return self.samples


def child(model_name: str, seconds: float, out: Path) -> None:
    """The measured run: baseline, fuzz for ``seconds``, write what was seen as JSON."""
    import torch

    from benchmarks.throughput import build
    from nnfuzz.config import FuzzConfig
    from nnfuzz.drivers.in_process import InProcess
    from nnfuzz.status import Reporter, Snapshot
    from nnfuzz.target import in_memory

    class CorpusLog(Reporter):
        """Corpus and coverage counts at every status line."""

        def __init__(self) -> None:
            self.rows: list[tuple[float, int, int, int]] = []

        def status(self, snapshot: Snapshot) -> None:
            self.rows.append((time.monotonic() - start, snapshot.execs, snapshot.corpus,
                              snapshot.coverage))

    torch.set_num_threads(1)
    model, seeds = build(MODELS[model_name])
    baseline = rss_bytes()
    start = time.monotonic()
    sampler, log = RssSampler(start), CorpusLog()
    sampler.start()
    fuzzer = InProcess(in_memory(model, seeds, bounds=(0.0, 1.0)),
                       FuzzConfig(max_time=seconds, seed=0, **OPTIONS.get(model_name, {})),
                       reporter=log)
    try:
        result = fuzzer.run()
        elements = fuzzer.engine.corpus.elements()
        dim = fuzzer.engine.coverage.index.dim
    finally:
        fuzzer.close()
    samples = sampler.stop()
    json.dump({
        "model": MODELS[model_name] + (" flooding" if model_name in OPTIONS else ""),
        "options": OPTIONS.get(model_name, {}), "seconds": seconds, "execs": result.execs,
        "baseline_bytes": baseline, "peak_bytes": peak_rss_bytes(),
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "corpus": len(elements[0]), "coverage": len(fuzzer.engine.coverage), "dim": dim,
        "input_bytes": sum(t.numel() * t.element_size() for t in elements),
        "bytes_per_input": sum(t[0].numel() * t.element_size() for t in elements),
        "rss": samples, "status": log.rows,
    }, out.open("w"))


def measure(model_name: str, seconds: float) -> dict:  # type: ignore[type-arg]
    """Run the child in a fresh interpreter and read its JSON."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "memory.json"
        subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", model_name,
                        "--seconds", str(seconds), "--json", str(out)],
                       cwd=machine.ROOT, check=True, timeout=seconds + 300)
        return json.loads(out.read_text())


def stored_bytes(run: dict, corpus: int, coverage: int) -> int:  # type: ignore[type-arg]
    """Raw bytes of ``corpus`` inputs and ``coverage`` vectors of this run."""
    return corpus * run["bytes_per_input"] + coverage * run["dim"] * 4


def late_growth(run: dict) -> tuple[float, float]:  # type: ignore[type-arg]
    """(RSS growth, raw stored growth) in bytes over the second half of the run.

    Medians of the samples around the middle and at the end, so that one
    sample's noise does not decide: RSS that grows while the corpus does not
    is memory kept for nothing.
    """
    half = run["seconds"] / 2
    rss = run["rss"]
    mid_rss = statistics.median(b for _, b in sorted(rss, key=lambda s: abs(s[0] - half))[:10])
    end_rss = statistics.median(b for _, b in rss[-10:])
    return end_rss - mid_rss, stored_growth_since(run, half)


def warm_growth(run: dict) -> tuple[float, float]:  # type: ignore[type-arg]
    """(RSS growth, raw stored growth) in bytes from WARM_SECONDS to the end of the run."""
    warm_rss = min(run["rss"], key=lambda sample: abs(sample[0] - WARM_SECONDS))[1]
    return run["peak_bytes"] - warm_rss, stored_growth_since(run, WARM_SECONDS)


def stored_growth_since(run: dict, seconds: float) -> int:  # type: ignore[type-arg]
    """Raw stored bytes at the run's last status line minus at the one nearest ``seconds``."""
    then = min(run["status"], key=lambda row: abs(row[0] - seconds))
    end = run["status"][-1]
    return stored_bytes(run, end[2], end[3]) - stored_bytes(run, then[2], then[3])


def plot(runs: list[dict], quick: bool) -> str | None:  # type: ignore[type-arg]
    """Per model, over time: RSS above the baseline, raw stored MiB, and the corpus size."""
    plt = report.pyplot()
    if plt is None:
        return None
    figure, panels = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    for axes, run in zip(panels[0], runs):
        base = run["baseline_bytes"]
        axes.plot([t for t, _ in run["rss"]], [(b - base) / MIB for _, b in run["rss"]],
                  label="RSS − baseline")
        times = [row[0] for row in run["status"]]
        raw = [stored_bytes(run, row[2], row[3]) / MIB for row in run["status"]]
        axes.plot(times, raw, label="raw stored (inputs + coverage)")
        axes.plot(times, [RATIO_TARGET * r for r in raw], linestyle=":", color="gray",
                  label=f"{RATIO_TARGET:g} × raw stored (target)")
        axes.set(xlabel="seconds", ylabel="MiB", title=run["model"])
        corpus = axes.twinx()
        corpus.plot(times, [row[2] for row in run["status"]], color="black", linestyle="--",
                    linewidth=1, label="corpus elements")
        corpus.set_ylabel("corpus elements")
        lines = axes.get_legend_handles_labels()
        more = corpus.get_legend_handles_labels()
        axes.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    return report.save_figure(figure, "memory", quick)


def markdown(runs: list[dict], quick: bool, wall_s: float, started: str,  # type: ignore[type-arg]
             image: str | None) -> str:
    rows, verdicts = [], []
    for run in runs:
        raw = stored_bytes(run, run["corpus"], run["coverage"])
        coverage_bytes = run["coverage"] * run["dim"] * 4
        ratio = (run["peak_bytes"] - run["baseline_bytes"]) / raw
        rss_late, raw_late = late_growth(run)
        rss_warm, raw_warm = warm_growth(run)
        growth = rss_warm / raw_warm if raw_warm >= JUDGED_GROWTH else None
        rows.append([run["model"], f"{run['seconds']:.0f}", f"{run['execs']:,}",
                     f"{run['corpus']:,}", f"{run['coverage']:,} × {run['dim']}",
                     f"{run['input_bytes'] / MIB:.2f} + {coverage_bytes / MIB:.2f}",
                     f"{run['baseline_bytes'] / MIB:.0f}", f"{run['peak_bytes'] / MIB:.0f}",
                     f"{(run['peak_bytes'] - run['baseline_bytes']) / MIB:.1f}", f"{ratio:.1f}",
                     f"{rss_warm / MIB:+.1f} / {raw_warm / MIB:+.2f}",
                     f"**{growth:.2f}**" if growth is not None else "—",
                     f"{rss_late / MIB:+.1f} / {raw_late / MIB:+.2f}"])
        if growth is None:
            verdicts.append(f"- {run['model']}: raw stored {raw_warm / MIB:+.2f} MiB after its "
                            f"first {WARM_SECONDS:g} s (RSS {rss_warm / MIB:+.1f} MiB): too little "
                            "growth to judge a ratio by; memory beyond the baseline "
                            f"{(run['peak_bytes'] - run['baseline_bytes']) / MIB:.0f} MiB in all.")
        else:
            verdicts.append(f"- {run['model']}: RSS growth / raw stored growth after warm-up = "
                            f"{growth:.2f} against the target <= {RATIO_TARGET:g}: "
                            f"**{'met' if growth <= RATIO_TARGET else 'not met'}**.")
    return "\n".join([
        "## Memory: peak resident memory against what a run stores", "",
        report.command_line("memory", quick, wall_s, started),
        "",
        "The tiny MLP and the small CNN of the throughput section (random init, 32 seeds in "
        "[0, 1]), each fuzzed with nnfuzz's defaults (objectives nonfinite and exception, batch "
        "100, run seed 0, no output folder) for the seconds given, and the tiny MLP again "
        f"flooding ({', '.join(f'{k}={v:g}' for k, v in OPTIONS['mlp-flood'].items())}: nearly "
        "every mutant is kept, so the corpus cap of 10,000 inputs and the novelty index's cap are "
        "both reached), one torch thread, each in a "
        "fresh subprocess (`python -m benchmarks.memory --child ...`). Baseline: VmRSS after "
        "importing torch and nnfuzz and building the model and seeds, before fuzzing. Peak: "
        "VmHWM at the end (not `ru_maxrss`: Linux carries it over fork and exec, so the child "
        "would report its parent's peak). Raw stored: the corpus inputs (numel × element size, summed) "
        "plus the coverage vectors (count × dim × 4 bytes). Late growth: RSS growth against "
        "raw-stored growth over the second half of the run (RSS that grows while the corpus "
        f"does not is kept for nothing); RSS was sampled every {SAMPLE_EVERY} s. Growth after "
        f"warm-up, the figure judged against the target: peak RSS minus RSS at {WARM_SECONDS:g} s, "
        f"over the raw stored bytes added since (judged when that is at least 1 MiB).", "",
        report.table(["model", "seconds", "execs", "corpus", "coverage vectors",
                      "raw stored MiB (inputs + coverage)", "baseline MiB", "peak MiB",
                      "peak − baseline MiB", "(peak − baseline) / raw",
                      f"growth after {WARM_SECONDS:g} s MiB, RSS / raw", "growth ratio",
                      "late growth MiB, RSS / raw"], rows), "",
        *verdicts,
        *(["", image] if image else []),
    ])


def run(quick: bool, seconds: float | None = None, models: tuple[str, ...] = tuple(MODELS)) -> Path:
    seconds = seconds or (QUICK_SECONDS if quick else FULL_SECONDS)
    started, start = machine.provenance(threads=1), time.perf_counter()
    runs = []
    for name in models:
        runs.append(measure(name, seconds))
        found = runs[-1]
        print(f"{found['model']}: baseline {found['baseline_bytes'] / MIB:.0f} MiB, peak "
              f"{found['peak_bytes'] / MIB:.0f} MiB, corpus {found['corpus']:,}, raw stored "
              f"{stored_bytes(found, found['corpus'], found['coverage']) / MIB:.2f} MiB",
              flush=True)
    image = plot(runs, quick)
    return report.write("memory", markdown(runs, quick, time.perf_counter() - start, started,
                                           image), quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SECONDS:g} s per model (default {FULL_SECONDS:g} s)")
    parser.add_argument("--seconds", type=float, help="seconds of fuzzing per model")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--child", choices=tuple(MODELS),
                        help="(internal) be the measured subprocess for this model")
    parser.add_argument("--json", type=Path, help="(internal) where --child writes its numbers")
    args = parser.parse_args()
    if args.child:
        if args.json is None or args.seconds is None:
            parser.error("--child needs --seconds and --json")
        child(args.child, args.seconds, args.json)
    else:
        run(args.quick, args.seconds, tuple(args.models.split(",")))


if __name__ == "__main__":
    main()
