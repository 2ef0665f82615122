"""The novelty index's HNSW parameters, chosen on the zoo's own coverage vectors.

    python -m benchmarks.index_params [--quick] [--target digits_std]

Random vectors are the hard case for HNSW and say little about what nnfuzz
stores: a model's outputs on mutants of a few seeds. This fuzzes a zoo target
(batch 1000) and keeps the coverage vector of every mutant it judged, in order;
drops the exact and near duplicates (one vector per grid cell of 1% of the
vectors' spread: the index only ever receives vectors farther than the
threshold from all it holds); then, for each HNSW graph degree M and search
depth efSearch, grows an index to 10k, 100k and 1M of them and looks up the
next 3,000 of the stream (the mutants that came next), 100 per call, as a fuzz
step does. "exact": the share of lookups whose nearest distance is the true one
(brute force decides; a miss overstates the distance, so a mutant may pass as
novel when it is not). Chosen: the fastest lookup at the largest size among the
settings exact on at least 95% at every size.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from benchmarks import machine, report

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DEGREES = (8, 16, 32)
DEPTHS = (16, 32, 64)
QUERIES = 100
LOOKUPS = 30
RECALL_TARGET = 0.95
RATIO_TARGET = 3.0
#: Duplicates closer than this share of the vectors' spread (mean per-dimension std) are dropped.
CELL_SHARE = 0.01
#: Executions fuzzed at most to gather the vectors.
MAX_EXECS = 4_000_000


def zoo_vectors(target: str, wanted: int) -> tuple[np.ndarray, int]:
    """Coverage vectors of the mutants the target's run judged, deduplicated, in order; and the
    executions it took. Coverage.update is wrapped for the run (measurement only)."""
    import nnfuzz
    from nnfuzz import coverage
    from nnfuzz.config import FuzzConfig

    seen: list[np.ndarray] = []
    original = coverage.Coverage.update

    def update(self, vectors, stats, eligible, parents=None):  # type: ignore[no-untyped-def]
        judged = vectors[eligible & torch.isfinite(vectors).all(1)]
        seen.append(judged.detach().float().cpu().numpy().copy())
        return original(self, vectors, stats, eligible, parents)

    loaded = nnfuzz.load_target(machine.ROOT / "benchmarks" / "zoo" / f"{target}.py")
    execs, chunk = 0, 500_000
    coverage.Coverage.update = update  # type: ignore[method-assign]
    try:
        while True:
            result = nnfuzz.fuzz_target(loaded, FuzzConfig(runs=chunk, seed=execs, batch_size=1000))
            execs += result.execs
            vectors = thinned(np.concatenate(seen))
            if len(vectors) >= wanted or execs >= MAX_EXECS:
                return vectors, execs
    finally:
        coverage.Coverage.update = original  # type: ignore[method-assign]


def thinned(vectors: np.ndarray) -> np.ndarray:
    """One vector per grid cell of CELL_SHARE of the spread, the first of each, in order."""
    cell = CELL_SHARE * float(vectors.std(0).mean()) or 1.0
    _, first = np.unique(np.floor(vectors / cell).astype(np.int64), axis=0, return_index=True)
    return np.ascontiguousarray(vectors[np.sort(first)])


@dataclass(frozen=True)
class Point:
    degree: int
    depth: int
    size: int
    lookup_ms: float
    exact: float
    bytes_per_vector: float
    add_us: float
    #: Distances computed per query (faiss's hnsw_stats): the work a lookup does, apart from
    #: how long fetching the vectors and links from memory takes.
    distances_per_query: float = 0.0


def sweep(vectors: np.ndarray, sizes: tuple[int, ...]) -> list[Point]:
    faiss.omp_set_num_threads(1)
    points = []
    for size in sizes:
        stored, queries = vectors[:size], vectors[size:size + QUERIES * LOOKUPS]
        exact_index = faiss.IndexFlatL2(vectors.shape[1])
        exact_index.add(stored)
        truth = exact_index.search(queries, 1)[0][:, 0]
        for degree in DEGREES:
            graph = faiss.IndexHNSWFlat(vectors.shape[1], degree)
            start = time.perf_counter()
            for at in range(0, size, 1000):
                graph.add(stored[at:at + 1000])
            add_us = 1e6 * (time.perf_counter() - start) / size
            memory = len(faiss.serialize_index(graph)) / size
            for depth in DEPTHS:
                graph.hnsw.efSearch = depth
                times = []
                for call in range(LOOKUPS):
                    batch = queries[call * QUERIES:(call + 1) * QUERIES]
                    start = time.perf_counter()
                    graph.search(batch, 1)
                    times.append(1e3 * (time.perf_counter() - start))
                faiss.cvar.hnsw_stats.reset()
                found = graph.search(queries, 1)[0][:, 0]
                work = faiss.cvar.hnsw_stats.ndis / len(queries)
                exact = float(np.mean(np.isclose(found, truth, rtol=1e-4, atol=1e-9)))
                points.append(Point(degree, depth, size, statistics.median(times), exact, memory,
                                    add_us, work))
                print(f"M={degree} efSearch={depth} n={size:,}: {points[-1].lookup_ms:.2f} ms, "
                      f"exact {exact:.1%}, {memory:.0f} B/vector", flush=True)
    return points


def chosen(points: list[Point]) -> tuple[int, int] | None:
    """The (M, efSearch) with the fastest lookup at the largest size, exact on >= 95% at all."""
    largest = max(p.size for p in points)
    good = [(p.degree, p.depth) for p in points if p.size == largest
            and all(q.exact >= RECALL_TARGET for q in points
                    if (q.degree, q.depth) == (p.degree, p.depth))]
    if not good:
        return None
    return min(good, key=lambda key: next(p.lookup_ms for p in points
                                          if (p.degree, p.depth, p.size) == (*key, largest)))


def markdown(points: list[Point], target: str, dim: int, execs: int, kept: int, quick: bool,
             wall_s: float, started: str) -> str:
    sizes = sorted({p.size for p in points})
    rows = []
    for degree in DEGREES:
        for depth in DEPTHS:
            mine = {p.size: p for p in points if (p.degree, p.depth) == (degree, depth)}
            rows.append([degree, depth,
                         *(f"{mine[s].lookup_ms:.2f} ({mine[s].exact:.1%})" for s in sizes),
                         f"{mine[sizes[-1]].lookup_ms / mine[sizes[0]].lookup_ms:.2f}×",
                         f"{mine[sizes[-1]].bytes_per_vector:.0f}",
                         f"{mine[sizes[-1]].add_us:.0f}"])
    choice = chosen(points)
    if choice is None:
        verdict = f"No setting is exact on {RECALL_TARGET:.0%} of lookups at every size."
    else:
        mine = {p.size: p for p in points if (p.degree, p.depth) == choice}
        small, large = mine[sizes[0]], mine[sizes[-1]]
        ratio = large.lookup_ms / small.lookup_ms
        work = large.distances_per_query / small.distances_per_query
        verdict = (f"Chosen: M = {choice[0]}, efSearch = {choice[1]}: exact on "
                   f"{min(p.exact for p in mine.values()):.1%} or more at every size; "
                   f"{sizes[-1]:,} / {sizes[0]:,} vectors = **{ratio:.2f}×** against the target "
                   f"<= {RATIO_TARGET:g}×: **{'met' if ratio <= RATIO_TARGET else 'not met'}**. "
                   f"A lookup computes {small.distances_per_query:.0f} distances per query at "
                   f"{sizes[0]:,} and {large.distances_per_query:.0f} at {sizes[-1]:,} "
                   f"({work:.2f}×): the rest of the {ratio:.2f}× is time per distance, "
                   f"{ratio / work:.2f}× as long: most likely memory, as the index "
                   f"({large.bytes_per_vector * sizes[-1] / 2**20:.0f} MiB) outgrows the CPU's "
                   f"caches, which the {small.bytes_per_vector * sizes[0] / 2**20:.1f} MiB one "
                   "fits in.")
    flag = " --quick" if quick else ""
    return "\n".join([
        "## Novelty index parameters, on the zoo's coverage vectors", "",
        f"`python -m benchmarks.index_params{flag}` — {wall_s:.0f} s wall-clock; {started}.", "",
        f"The `{target}` zoo target fuzzed for {execs:,} executions (batch 1000): {kept:,} "
        f"distinct coverage vectors of {dim} dims after dropping duplicates (one per grid cell "
        f"of {CELL_SHARE:.0%} of their spread). Each cell: ms per lookup of {QUERIES} (median of "
        f"{LOOKUPS}) and, in brackets, the share of {QUERIES * LOOKUPS:,} lookups whose nearest "
        "distance was exact; bytes per stored vector (the serialized index; the vector itself is "
        f"{4 * dim} B) and µs per vector added at the largest size. One faiss thread.", "",
        report.table(["M", "efSearch", *(f"{s:,} vectors" for s in sizes),
                      f"{sizes[-1]:,} / {sizes[0]:,}", "B/vector", "µs/add"], rows), "",
        verdict,
    ])


def run(quick: bool, target: str = "digits_std") -> Path:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    started, start = machine.provenance(), time.perf_counter()
    wanted = sizes[-1] + QUERIES * LOOKUPS
    vectors, execs = zoo_vectors(target, wanted)
    if len(vectors) < wanted:
        sizes = tuple(s for s in sizes if s + QUERIES * LOOKUPS <= len(vectors))
    points = sweep(vectors, sizes)
    text = markdown(points, target, vectors.shape[1], execs, len(vectors), quick,
                    time.perf_counter() - start, started)
    return report.write("index-params", text, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 vectors")
    parser.add_argument("--target", default="digits_std", help="a zoo target (benchmarks/zoo)")
    args = parser.parse_args()
    run(args.quick, args.target)


if __name__ == "__main__":
    main()
