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

from benchmarks import machine, report, wide_vectors

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DEGREES = (8, 16, 32)
DEPTHS = (16, 32, 64)
QUERIES = 100
LOOKUPS = 30
RECALL_TARGET = 0.95
#: A lookup is *near* when the distance it gives is at most this share over the true one: on
#: wide vectors many stored ones lie almost as near as the nearest, and a distance 1% over
#: the true one changes a novelty verdict only for a mutant within 1% of the threshold.
NEAR = 0.05
#: The degree (M) that stands for a flat (exact, brute-force) index in the points.
FLAT = 0
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
    #: The share of lookups whose distance is within NEAR of the true nearest one.
    near: float = 0.0


def sweep(vectors: np.ndarray, sizes: tuple[int, ...],
          queries: np.ndarray | None = None) -> list[Point]:
    """One graph per degree, grown through ``sizes`` of ``vectors`` side by side; at each size,
    every search depth timed on ``queries`` (default: the QUERIES * LOOKUPS vectors of the
    stream that come next) and checked against one brute-force search."""
    faiss.omp_set_num_threads(1)
    graphs = {degree: faiss.IndexHNSWFlat(vectors.shape[1], degree) for degree in DEGREES}
    added_s = dict.fromkeys(DEGREES, 0.0)
    exact_index = faiss.IndexFlatL2(vectors.shape[1])
    points = []
    for size in sizes:
        for degree, graph in graphs.items():
            start = time.perf_counter()
            for at in range(graph.ntotal, size, 1000):
                graph.add(vectors[at:min(at + 1000, size)])
            added_s[degree] += time.perf_counter() - start
        exact_index.add(vectors[exact_index.ntotal:size])
        asked = queries if queries is not None else vectors[size:size + QUERIES * LOOKUPS]
        truth = exact_index.search(asked, 1)[0][:, 0]
        points.append(_measure_flat(exact_index, asked, size))
        for degree, graph in graphs.items():
            memory = len(faiss.serialize_index(graph)) / size
            for depth in DEPTHS:
                points.append(_measure(graph, depth, asked, truth, size, memory,
                                       1e6 * added_s[degree] / size))
    return points


def _measure(graph: faiss.IndexHNSWFlat, depth: int, asked: np.ndarray, truth: np.ndarray,
             size: int, memory: float, add_us: float) -> Point:
    """One (M, efSearch) at one size: lookups timed, then checked against ``truth``."""
    graph.hnsw.efSearch = depth
    times = []
    for call in range(LOOKUPS):
        batch = asked[call * QUERIES:(call + 1) * QUERIES]
        start = time.perf_counter()
        graph.search(batch, 1)
        times.append(1e3 * (time.perf_counter() - start))
    faiss.cvar.hnsw_stats.reset()
    found = graph.search(asked, 1)[0][:, 0]
    work = faiss.cvar.hnsw_stats.ndis / len(asked)
    exact = float(np.mean(np.isclose(found, truth, rtol=1e-4, atol=1e-9)))
    near = float(np.mean(np.sqrt(np.maximum(found, 0))
                         <= (1 + NEAR) * np.sqrt(np.maximum(truth, 0)) + 1e-9))
    point = Point(graph.hnsw.nb_neighbors(1), depth, size, statistics.median(times), exact,
                  memory, add_us, work, near)
    print(f"M={point.degree} efSearch={depth} n={size:,}: {point.lookup_ms:.2f} ms, "
          f"exact {exact:.1%}, {memory:.0f} B/vector", flush=True)
    return point


def _measure_flat(index: faiss.IndexFlatL2, asked: np.ndarray, size: int) -> Point:
    """The brute-force index at one size: exact by construction, every stored vector a distance."""
    times = []
    for call in range(LOOKUPS):
        start = time.perf_counter()
        index.search(asked[call * QUERIES:(call + 1) * QUERIES], 1)
        times.append(1e3 * (time.perf_counter() - start))
    point = Point(FLAT, 0, size, statistics.median(times), 1.0, 4.0 * index.d, 0.0, size, 1.0)
    print(f"flat n={size:,}: {point.lookup_ms:.2f} ms", flush=True)
    return point


def chosen(points: list[Point], by: str = "exact") -> tuple[int, int] | None:
    """The (M, efSearch) with the fastest lookup at the largest size, ``by`` ("exact" or "near")
    on >= 95% of lookups at every size; (FLAT, 0) when the flat index is faster than them."""
    largest = max(p.size for p in points)
    good = [(p.degree, p.depth) for p in points if p.size == largest
            and all(getattr(q, by) >= RECALL_TARGET for q in points
                    if (q.degree, q.depth) == (p.degree, p.depth))]
    if not good:
        return None
    return min(good, key=lambda key: next(p.lookup_ms for p in points
                                          if (p.degree, p.depth, p.size) == (*key, largest)))


def table(points: list[Point], dim: int, by: str = "exact") -> list[str]:
    """The sweep as a table, and the chosen setting (``by`` as :func:`chosen`) with its verdict."""
    sizes = sorted({p.size for p in points})
    rows = []
    settings = [(FLAT, 0)] if any(p.degree == FLAT for p in points) else []
    for degree, depth in settings + [(d, e) for d in DEGREES for e in DEPTHS]:
        mine = {p.size: p for p in points if (p.degree, p.depth) == (degree, depth)}
        rows.append(["flat" if degree == FLAT else degree, "—" if degree == FLAT else depth,
                     *(f"{mine[s].lookup_ms:.2f} ({mine[s].exact:.1%}"
                       + (f", {mine[s].near:.1%})" if by == "near" else ")") for s in sizes),
                     f"{mine[sizes[-1]].lookup_ms / mine[sizes[0]].lookup_ms:.2f}×",
                     f"{mine[sizes[-1]].bytes_per_vector:.0f}",
                     f"{mine[sizes[-1]].add_us:.0f}"])
    choice = chosen(points, by)
    if choice is None:
        verdict = f"No setting is {by} on {RECALL_TARGET:.0%} of lookups at every size."
    else:
        mine = {p.size: p for p in points if (p.degree, p.depth) == choice}
        small, large = mine[sizes[0]], mine[sizes[-1]]
        ratio = large.lookup_ms / small.lookup_ms
        work = large.distances_per_query / small.distances_per_query
        verdict = (((f"Chosen: M = {choice[0]}, efSearch = {choice[1]}: {by} on "
                     f"{min(getattr(p, by) for p in mine.values()):.1%} or more at every size; ")
                    if choice[0] != FLAT else
                    f"Chosen: the flat index, exact, as no HNSW setting that is {by} on "
                    f"{RECALL_TARGET:.0%} at every size is faster; ")
                   + f"{sizes[-1]:,} / {sizes[0]:,} vectors = **{ratio:.2f}×**"
                   + (f" against the target <= {RATIO_TARGET:g}×: "
                      f"**{'met' if ratio <= RATIO_TARGET else 'not met'}**"
                      if sizes[-1] >= 100 * sizes[0] else "")
                   + (". " if sizes[-1] < 100 * sizes[0] else
                      f". A lookup computes {small.distances_per_query:.0f} distances per query at "
                   f"{sizes[0]:,} and {large.distances_per_query:.0f} at {sizes[-1]:,} "
                   f"({work:.2f}×): the rest of the {ratio:.2f}× is time per distance, "
                   f"{ratio / work:.2f}× as long: most likely memory, as the index "
                   f"({large.bytes_per_vector * sizes[-1] / 2**20:.0f} MiB) outgrows the CPU's "
                   f"caches, which the {small.bytes_per_vector * sizes[0] / 2**20:.1f} MiB one "
                   "fits in."))
    return [report.table(["M", "efSearch", *(f"{s:,} vectors" for s in sizes),
                          f"{sizes[-1]:,} / {sizes[0]:,}", "B/vector", "µs/add"], rows), "",
            verdict]


def cells_line(dim: int) -> str:
    return (f"Each cell: ms per lookup of {QUERIES} (median of {LOOKUPS}) and, in brackets, the "
            f"share of {QUERIES * LOOKUPS:,} lookups whose nearest distance was exact; bytes per "
            f"stored vector (the serialized index; the vector itself is {4 * dim:,} B) and µs per "
            "vector added at the largest size. One faiss thread.")


def markdown(points: list[Point], target: str, dim: int, execs: int, kept: int, quick: bool,
             wall_s: float, started: str) -> str:
    flag = " --quick" if quick else ""
    return "\n".join([
        "## Novelty index parameters, on the zoo's coverage vectors", "",
        f"`python -m benchmarks.index_params{flag}` — {wall_s:.0f} s wall-clock; {started}.", "",
        f"The `{target}` zoo target fuzzed for {execs:,} executions (batch 1000): {kept:,} "
        f"distinct coverage vectors of {dim} dims after dropping duplicates (one per grid cell "
        f"of {CELL_SHARE:.0%} of their spread). {cells_line(dim)}", "",
        *table(points, dim),
    ])


def wide_markdown(points: list[Point], source: str, dim: int, real: int, quick: bool,
                  wall_s: float, started: str) -> str:
    """A subsection of the section: the index on one real architecture's vectors."""
    flag = " --quick" if quick else ""
    sizes = sorted({p.size for p in points})
    return "\n".join([
        f"### {source}: {dim:,} dims", "",
        f"`python -m benchmarks.index_params --source {source}{flag}` — {wall_s:.0f} s "
        f"wall-clock; {started}.", "",
        f"{wide_vectors.WHAT[source]}: {real:,} real coverage vectors, the plain model's on "
        "inputs like a fuzz run's mutants (benchmarks/wide_vectors.py); the last "
        f"{wide_vectors.HELD_BACK:,} are the queries, the "
        f"others are stored, and past them each size up to {sizes[-1]:,} is made of perturbed "
        f"copies of them. {cells_line(dim)} The second figure in brackets: the share whose "
        f"distance was within {NEAR:.0%} of the true nearest one.", "",
        *table(points, dim, "near"),
    ])


def with_wide(text: str) -> str:
    """The section's zoo part, then every source's subsection written so far."""
    zoo = text.split(WIDE_HEADING)[0].rstrip("\n")
    parts = [report.result_path(f"index-params-{source}", False)
             for source in wide_vectors.SOURCES]
    found = [path.read_text().rstrip("\n") for path in parts if path.exists()]
    return "\n\n".join([zoo, WIDE_HEADING, WIDE_INTRO, *found]) if found else zoo


WIDE_HEADING = "### Wide vectors: the real architectures' coverage"
WIDE_INTRO = "\n".join([
    "Real models give wider coverage vectors than the zoo's: a 1,000-class output, a pooled "
    "layer. Each source below is measured on its own vectors, at sizes up to what nnfuzz's index "
    "holds at that width before `max_coverage_mb` (256 MB) starts it again, and judged by the "
    "share of lookups whose distance is within 5% of the true nearest one (on wide vectors many "
    "stored ones lie almost as near as the nearest, so the exact one is rarely found, and a "
    "distance a little over the true one changes a novelty verdict only near the threshold). "
    "What `nnfuzz.coverage.hnsw_parameters` takes, by width (`HNSW_BY_WIDTH`):", "",
    "| width | measured on | M | efSearch | why |",
    "|---|---|---|---|---|",
    "| up to 16 | the zoo's 10-dim outputs, 10k-1M | 8 | 32 | the table above |",
    "| 17-512 | a ViT's hidden state mean-pooled to 192, 10k-250k | 32 | 16 | no setting within 5% "
    "on 95% (57-83%); M = 32 the most at every size, 4.8 ms at 250k where flat takes 2.8 s |",
    "| 513-2,048 | ResNet-18's 1,000-class output, 10k-60k | 32 | 16 | the fastest within 5% on "
    ">= 95% (98.8%) |",
    "| wider | a ViT's hidden state pooled to 4,096, 5k-15k | 16 | 16 | the fastest within 5% on "
    ">= 95% (95.5%); 2.5x faster lookups and 2.6x cheaper adds than M = 32 |",
])


def run(quick: bool, target: str = "digits_std") -> Path:
    if target in wide_vectors.SOURCES:
        return run_wide(quick, target)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    started, start = machine.provenance(), time.perf_counter()
    wanted = sizes[-1] + QUERIES * LOOKUPS
    vectors, execs = zoo_vectors(target, wanted)
    if len(vectors) < wanted:
        sizes = tuple(s for s in sizes if s + QUERIES * LOOKUPS <= len(vectors))
    points = sweep(vectors, sizes)
    text = markdown(points, target, vectors.shape[1], execs, len(vectors), quick,
                    time.perf_counter() - start, started)
    return report.write("index-params", with_wide(text), quick)


def run_wide(quick: bool, source: str) -> Path:
    """One real architecture's subsection, then the section again with it."""
    sizes = (wide_vectors.SIZES[source][:2] if quick else wide_vectors.SIZES[source])
    started, start = machine.provenance(), time.perf_counter()
    real = wide_vectors.real_vectors(source)
    stored, queries = wide_vectors.extended(real, sizes[-1])
    points = sweep(stored, sizes, queries)
    text = wide_markdown(points, source, stored.shape[1], len(real), quick,
                         time.perf_counter() - start, started)
    path = report.write(f"index-params-{source}", text, quick)
    section = report.result_path("index-params", quick)
    if section.exists():
        section.write_text(with_wide(section.read_text()) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 vectors")
    parser.add_argument("--target", "--source", default="digits_std",
                        help="a zoo target (benchmarks/zoo), or a real architecture's vectors: "
                             + ", ".join(wide_vectors.SOURCES))
    args = parser.parse_args()
    run(args.quick, args.target)


if __name__ == "__main__":
    main()
