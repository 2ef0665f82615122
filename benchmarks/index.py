"""Novelty index: what one batch's nearest-neighbour lookup costs as the coverage grows.

    python -m benchmarks.index [--quick] [--sizes 10000,100000,1000000] [--dims 10,64]

Every fuzz step asks nnfuzz.coverage.NoveltyIndex how far each of the batch's
coverage vectors is from everything seen, so a lookup that grew with the
number of stored vectors would slow a long run down to a crawl. This grows one
index per dimension to each size (adding 100 vectors per call, as a fuzz step
adds at most a batch), times batches of 100 fresh queries at each size, and
reports milliseconds per lookup batch, the ratio of the largest size to the
smallest (target: 1M / 10k <= 3x), the time to add the vectors, and how often
the approximate (HNSW) index returned the exact nearest neighbour. Vectors
are standard normal float32: coverage vectors are a model's outputs, of the
order of one per dimension; uniform random vectors are the hard case for HNSW.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from benchmarks import machine, report
from nnfuzz.coverage import FAISS_THREADS, HNSW_AFTER, NoveltyIndex, hnsw_parameters

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DIMS = (10, 64)
QUERIES = 100
#: Vectors per add() call: at most one batch is added per fuzz step.
ADD_CHUNK = 100
#: Lookup batches timed at each size (after WARMUP untimed ones).
LOOKUPS = 30
WARMUP = 3
#: The last this many lookup batches are checked against a brute-force search.
CHECKED = 3
RATIO_TARGET = 3.0


@dataclass
class Point:
    """The index at one size."""

    dim: int
    size: int
    #: Seconds to add the vectors since the previous size.
    add_s: float
    added: int
    lookup_ms: list[float]
    #: Share of queries whose nearest neighbour the index found exactly.
    exact: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.lookup_ms)

    @property
    def add_us_per_vector(self) -> float:
        return 1e6 * self.add_s / self.added


def grow_and_measure(dim: int, sizes: tuple[int, ...], lookups: int = LOOKUPS,
                     seed: int = 0) -> list[Point]:
    """One index grown through ``sizes``; at each, time lookups and check them exactly."""
    rng = np.random.default_rng(seed)
    index = NoveltyIndex(dim)
    stored = np.empty((max(sizes), dim), dtype=np.float32)
    points = []
    for size in sizes:
        before = len(index)
        stored[before:size] = rng.standard_normal((size - before, dim), dtype=np.float32)
        start = time.perf_counter()
        for chunk in range(before, size, ADD_CHUNK):
            index.add(stored[chunk:min(chunk + ADD_CHUNK, size)])
        add_s = time.perf_counter() - start
        batches = [rng.standard_normal((QUERIES, dim), dtype=np.float32)
                   for _ in range(WARMUP + lookups)]
        times = []
        for queries in batches:
            start = time.perf_counter()
            index.nearest(queries)
            times.append(1e3 * (time.perf_counter() - start))
        points.append(Point(dim, size, add_s, size - before, times[WARMUP:],
                            exact_share(index, stored[:size], np.concatenate(batches[-CHECKED:]))))
    return points


def exact_share(index: NoveltyIndex, stored: np.ndarray, queries: np.ndarray) -> float:
    """How many of the queries got the true nearest distance (brute force decides)."""
    exact = faiss.IndexFlatL2(stored.shape[1])
    exact.add(stored)
    truth = np.sqrt(np.maximum(exact.search(queries, 1)[0][:, 0], 0))
    found = index.nearest(queries)
    return float(np.mean(np.isclose(found, truth, rtol=1e-4, atol=1e-6)))


def plot(points: list[Point], quick: bool) -> str | None:
    plt = report.pyplot()
    if plt is None:
        return None
    figure, (lookups, adds) = plt.subplots(1, 2, figsize=(9, 3.8))
    for dim in sorted({p.dim for p in points}):
        mine = [p for p in points if p.dim == dim]
        sizes = [p.size for p in mine]
        lookups.plot(sizes, [p.median_ms for p in mine], marker="o", label=f"{dim} dims")
        adds.plot(sizes, [p.add_us_per_vector for p in mine], marker="o", label=f"{dim} dims")
    lookups.set(xscale="log", xlabel="stored vectors", ylabel="ms per lookup of 100 queries",
                title="Lookup (median)")
    adds.set(xscale="log", xlabel="stored vectors", ylabel="µs per vector added",
             title="Adding (since the previous size)")
    for axes in (lookups, adds):
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8)
    return report.save_figure(figure, "index", quick)


def ratio_lines(points: list[Point]) -> list[str]:
    lines = []
    for dim in sorted({p.dim for p in points}):
        mine = sorted((p for p in points if p.dim == dim), key=lambda p: p.size)
        small, large = mine[0], mine[-1]
        ratio = large.median_ms / small.median_ms
        verdict = ("**met**" if ratio <= RATIO_TARGET else "**not met**") \
            if (small.size, large.size) == (10_000, 1_000_000) else \
            "(the target is for 1,000,000 against 10,000: run without --quick)"
        lines.append(f"- {dim} dims: {large.size:,} vectors / {small.size:,} vectors = "
                     f"**{ratio:.2f}×** against the target <= {RATIO_TARGET:g}× {verdict}.")
    return lines


def markdown(points: list[Point], quick: bool, wall_s: float, started: str,
             image: str | None) -> str:
    rows = [[p.dim, f"{p.size:,}", f"**{p.median_ms:.2f}**",
             f"{min(p.lookup_ms):.2f}–{max(p.lookup_ms):.2f}", f"{p.exact:.0%}",
             f"{p.added:,} in {p.add_s:.1f} s", f"{p.add_us_per_vector:.1f}"] for p in points]
    return "\n".join([
        "## Novelty index: nearest-neighbour lookups as the coverage grows", "",
        report.command_line("index", quick, wall_s, started),
        "",
        "`nnfuzz.coverage.NoveltyIndex` (a flat faiss index that becomes HNSW past "
        f"{HNSW_AFTER:,} vectors, with "
        + "; ".join(f"M = {m} and efSearch {e} for {d} dims"
                    for d, (m, e) in ((d, hnsw_parameters(d)) for d in sorted({p.dim for p in points})))
        + "; "
        f"{FAISS_THREADS} faiss thread(s)), grown with standard normal float32 vectors, "
        f"{ADD_CHUNK} per `add()` call (at most one batch is added per fuzz step). At each size, "
        f"{LOOKUPS} lookups of {QUERIES} fresh queries each (after {WARMUP} untimed) are timed; "
        f"the last {CHECKED} are checked against a brute-force search (\"exact\": the share of "
        "their queries whose nearest distance the index got right; a miss overstates the "
        "distance, so an input can pass as novel when it is not). Adding counts the vectors added "
        "since the previous size.", "",
        report.table(["dims", "stored vectors", "ms per lookup of 100, median", "min–max",
                      "exact", "added", "µs per vector added"], rows), "",
        *ratio_lines(points),
        *(["", image] if image else []),
    ])


def run(quick: bool, sizes: tuple[int, ...] | None = None,
        dims: tuple[int, ...] = DIMS) -> Path:
    sizes = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    started, start = machine.provenance(), time.perf_counter()
    points = []
    for dim in dims:
        for point in grow_and_measure(dim, sizes):
            points.append(point)
            print(f"{dim} dims, {point.size:,} vectors: {point.median_ms:.2f} ms per lookup, "
                  f"adding {point.add_us_per_vector:.1f} us per vector, exact {point.exact:.0%}",
                  flush=True)
    image = plot(points, quick)
    return report.write("index", markdown(points, quick, time.perf_counter() - start, started,
                                          image), quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="stop at 100,000 vectors (default: 1,000,000)")
    parser.add_argument("--sizes", help="comma-separated numbers of stored vectors, ascending")
    parser.add_argument("--dims", default=",".join(map(str, DIMS)),
                        help="comma-separated vector dimensions")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    run(args.quick, sizes, tuple(int(d) for d in args.dims.split(",")))


if __name__ == "__main__":
    main()
