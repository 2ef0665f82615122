"""What the numbers were measured on: the machine and the software, in one line each.

    python -m benchmarks.machine

Seconds mean little without the CPU, the core count, the load and the versions
that produced them, so every results file and the top of RESULTS.md carry them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    """Total memory in GiB from /proc/meminfo, or None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def gpu() -> str:
    """The CUDA devices torch sees, or 'no GPU'."""
    import torch

    if not torch.cuda.is_available():
        return "no GPU"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return "GPU: " + ", ".join(names)


def load_average() -> str:
    """The 1-minute load average: how busy the machine was (other work makes seconds noisy)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


#: A section measured while the 1-minute load average was above this share of the cores (1.5
#: on 2) is flagged: other work took a core, so its seconds and ratios are noisy.
BUSY_SHARE = 0.75


def load_line(text: str) -> str:
    """The line that ends a results section: the load when it started (as its provenance says)
    and now, at its end; flagged when either was above BUSY_SHARE of the cores."""
    found = re.search(r"load average ([\d.]+) at the start", text)
    start = float(found[1]) if found else None
    try:
        end: float | None = os.getloadavg()[0]
    except OSError:
        end = None
    cores = os.cpu_count() or 1
    said = (f"Load average (1 minute, {cores} cores): "
            f"{'unknown' if start is None else f'{start:.2f}'} at the start, "
            f"{'unknown' if end is None else f'{end:.2f}'} at the end.")
    busy = [x for x in (start, end) if x is not None and x > BUSY_SHARE * cores]
    if busy:
        said += (f" **Measured under load** (above {BUSY_SHARE * cores:g} on {cores} cores): "
                 "its seconds and ratios are noisy; rerun it on an idle machine.")
    return said


def commit() -> str:
    """nnfuzz's git commit, marked when nnfuzz/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nnfuzz"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"commit {head}" + (" with uncommitted changes in nnfuzz/" if dirty else "")


def software() -> str:
    """Python, torch, numpy, faiss and nnfuzz versions, and nnfuzz's commit."""
    import faiss
    import numpy
    import torch

    import nnfuzz

    return (f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"numpy {numpy.__version__}, faiss {getattr(faiss, '__version__', 'unknown')}; "
            f"nnfuzz {nnfuzz.__version__} at {commit()}")


def hardware() -> str:
    memory = memory_gib()
    return (f"{cpu_model()}, {os.cpu_count()} cores, "
            f"{f'{memory:.1f} GiB memory' if memory else 'unknown memory'}, {gpu()}")


def header() -> str:
    """The lines at the top of RESULTS.md."""
    return (f"Machine: {hardware()}.  \n"
            f"Software: {software()}.  \n"
            f"Regenerated {datetime.date.today().isoformat()}.")


def provenance(threads: int | None = None) -> str:
    """One line for a results file: software, torch threads, and the load when it started."""
    import torch

    threads = torch.get_num_threads() if threads is None else threads
    return (f"{software()}; {threads} torch thread(s); {hardware()}; "
            f"load average {load_average()} at the start")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(header())


if __name__ == "__main__":
    main()
