"""``python -m benchmarks [--quick] [--only finding,chains,real-architectures,minimization,throughput,index,index-params,memory,scaling,workers-finding,runtimes,precision,training]``.

Runs the measurement harness's sections in this order, each writing
benchmarks/results/<section>[-quick].md and its plot, then rebuilds
benchmarks/RESULTS.md from every results file (the TensorFuzz experiments
included: ``python -m benchmarks.tensorfuzz`` reruns those). Each section is
also a module of its own with its own options (``python -m benchmarks.index
--help``). --quick takes a few minutes; a full run takes about an hour, most
of it the memory section's two 10-minute runs and the 1M-vector index.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from benchmarks import (chains, finding_section, index, index_params, memory, minimization,
                        precision, real_architectures, report, runtimes, scaling, throughput,
                        training, workers_finding)

SECTIONS: dict[str, Callable[[bool], object]] = {
    "finding": finding_section.run,
    "chains": chains.run,
    "real-architectures": real_architectures.run,
    "minimization": minimization.run,
    "throughput": throughput.run,
    "index": index.run,
    "index-params": index_params.run,
    "memory": memory.run,
    "scaling": scaling.run,
    "workers-finding": workers_finding.run,
    "runtimes": runtimes.run,
    "precision": precision.run,
    "training": training.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("--quick", action="store_true",
                        help="small budgets (finding: 10,000 executions, 3 run seeds; index: up "
                             "to 100,000 vectors; memory: 20 s per model): a few minutes")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of "
                             f"{','.join(SECTIONS)}); RESULTS.md is rebuilt either way")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}: choose from {', '.join(SECTIONS)}")
    torch.set_num_threads(1)  # tiny models; extra threads only add noise on a shared machine
    timings = []
    for name in chosen:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        start = time.perf_counter()
        SECTIONS[name](args.quick)
        timings.append(f"{name} {time.perf_counter() - start:.0f} s")
    report.regenerate()
    print("done: " + ", ".join(timings), flush=True)


if __name__ == "__main__":
    main()
