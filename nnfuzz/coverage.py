"""Coverage: which inputs are new enough to keep.

Two signals decide. *Novelty* (TensorFuzz): an input whose coverage vector
lies farther than a threshold from every vector seen, found with a faiss
nearest-neighbour index. *Records* (pressure toward extremes): an input that
pushes some module's activation statistic (mean, spread, largest magnitude)
beyond anything seen before. Novelty alone floods the corpus with near
copies and drifts nowhere; records pull chains of mutants toward the dead,
saturated and overflowing regions where numerical bugs live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from nnfuzz.execution import STATS

#: The default threshold is this factor times the seeds' median nearest-neighbour distance.
THRESHOLD_FACTOR = 1.0
#: Threshold when the seeds give no spacing (one seed, or identical vectors).
FALLBACK_THRESHOLD = 1e-3
#: Seeds beyond this many are subsampled to derive the threshold.
THRESHOLD_SAMPLE = 2048
#: A flat index is exact and fastest while small; past this many vectors the
#: index becomes HNSW, whose lookup cost grows with log(n), not n. Measured on 2
#: cores, 100 queries of 10 dims: flat 0.6 ms at 1k vectors, 2.9 ms at 5k, 13 ms
#: at 20k; HNSW 1.4-1.8 ms at all three.
HNSW_AFTER = 2_000
#: faiss's OpenMP threads fight torch's for the same cores on batches this small:
#: 100 queries on 2k vectors took 5.6 ms with 2 threads and 1.2 ms with 1. faiss and
#: torch share one OpenMP runtime, so faiss's setting is made around each faiss call
#: and torch's own thread count put back after it (see _faiss_threads).
FAISS_THREADS = 1
#: Neighbours per node in the HNSW graph (M) and candidates kept per lookup (efSearch), by the
#: width of the coverage vectors: (widest, M, efSearch), narrowest first, each measured on real
#: coverage vectors of that width (python -m benchmarks.index_params [--source ...]; the
#: sizes go up to what max_coverage_mb lets the index hold at that width).
#: - Up to 16 values (the zoo's 3, 4 and 10): of the settings that find the exact nearest
#:   neighbour for >= 95% of queries at 10k, 100k and 1M, M = 8 with efSearch 32 was the
#:   fastest at 1M (3.5 ms per 100 lookups against 4.0 for M = 32 with efSearch 16), with 121
#:   bytes per 10-dim vector against 312 and adds in 47 us against 84.
#: - Up to 512 (a ViT's hidden state mean-pooled to 192 values, 10k-250k vectors): no setting
#:   gives a distance within 5% of the true one for 95% of queries (HNSW on these vectors, many
#:   nearly as near as the nearest, finds 57-83%); M = 32 finds the most at every size, at
#:   efSearch 16 in 4.8 ms at 250k, where a flat index takes 2.8 s, and 5.5 ms at 1M (perturbed
#:   copies of the real vectors: 2.1x its cost at 10k). Kept: 32, 16.
#: - Up to 2,048 (ResNet-18's 1,000-class output, 10k-60k): M = 32 with efSearch 16 is the
#:   fastest within 5% for >= 95% (98.8%; 34 ms per 100 lookups at 60k; M = 16 reaches 95.7%
#:   only at efSearch 64, in 46 ms).
#: - Wider (a ViT's hidden state pooled to 4,096 values, 5k-15k): M = 16 with efSearch 16,
#:   within 5% for 95.5%, in 74 ms at 15k against 183 for M = 32, whose adds cost 2.6 times as
#:   much (3.9 ms a vector).
HNSW_BY_WIDTH = ((16, 8, 32), (512, 32, 16), (2048, 32, 16), (None, 16, 16))


def hnsw_parameters(dim: int) -> tuple[int, int]:
    """(M, efSearch) for vectors of ``dim`` values (HNSW_BY_WIDTH)."""
    for widest, neighbours, depth in HNSW_BY_WIDTH:
        if widest is None or dim <= widest:
            return neighbours, depth
    raise AssertionError("HNSW_BY_WIDTH ends with a row for any width")


#: A record must beat the old one by this share of the range seen for that statistic.
RECORD_MARGIN = 0.01
#: The share of mutants that may be kept (novel or a record) once the search has warmed
#: up; above it, the threshold and the records' margin grow by THRESHOLD_STEP. libFuzzer
#: keeps well under 1% of its inputs after warm-up; at the seeds' spacing, a 1,000-class
#: CNN kept 35% of its mutants (61% measured in an earlier version).
TARGET_KEPT_SHARE = 0.01
#: Mutants judged before the threshold adapts at all (the seeds' neighbourhood is new).
ADAPT_AFTER = 2_000
#: Mutants per adaptation window.
ADAPT_EVERY = 1_000
#: How much the threshold and margin grow per window over the target: a little near it,
#: twice as much when ten times as many are kept (the seeds' spacing can be far too fine).
THRESHOLD_STEP = 1.25
FAR_OVER_STEP = 2.0


def derive_threshold(vectors: torch.Tensor) -> float:
    """THRESHOLD_FACTOR times the median distance from each vector to its nearest other."""
    return threshold_for(seed_spacing(vectors))


def threshold_for(spacing: float) -> float:
    """The default threshold for vectors this far apart (a median nearest-neighbour distance)."""
    return max(spacing * THRESHOLD_FACTOR, FALLBACK_THRESHOLD)


def seed_spacing(vectors: torch.Tensor) -> float:
    """The median distance from each (distinct, finite) vector to its nearest other; 0 for
    fewer than two."""
    vectors = vectors[torch.isfinite(vectors).all(1)].double()
    if vectors.shape[0] > THRESHOLD_SAMPLE:
        picks = torch.linspace(0, vectors.shape[0] - 1, THRESHOLD_SAMPLE).long()
        vectors = vectors[picks]
    vectors = torch.unique(vectors, dim=0)
    if vectors.shape[0] < 2:
        return 0.0
    distances = torch.cdist(vectors, vectors)
    distances.fill_diagonal_(float("inf"))
    return float(distances.min(1).values.median())


def mutant_spacing(seed_vectors: torch.Tensor, mutant_vectors: torch.Tensor) -> float:
    """The median distance a seed's first mutants moved from it (0 if none moved).

    Mutants at the smallest noise scales sit almost on top of each other, so
    their nearest-neighbour spacing would give a threshold that floods the
    corpus; how far they moved from the seed is the scale of one step.
    """
    mutants = mutant_vectors[torch.isfinite(mutant_vectors).all(1)].double()
    seeds = seed_vectors[torch.isfinite(seed_vectors).all(1)].double()
    if not len(mutants) or not len(seeds):
        return 0.0
    moved = torch.cdist(mutants, seeds).min(1).values
    moved = moved[moved > 0]
    return float(moved.median()) if len(moved) else 0.0


def is_degenerate(spacing: float) -> bool:
    """Coverage vectors this close together cannot tell inputs apart: constant outputs (a
    zero-initialised head), or outputs of 1e-10 (an untrained network's last layer)."""
    return spacing < FALLBACK_THRESHOLD


#: A layer chosen for coverage by nnfuzz gives at most this many values per example (a
#: wider one is average-pooled down to it): every mutant's vector goes into the novelty
#: index, whose lookups slow down with its width.
MAX_LAYER_VALUES = 4096


def pooled(rows: torch.Tensor, width: int = MAX_LAYER_VALUES) -> torch.Tensor:
    """(B, K) rows averaged down to at most ``width`` values each (neighbours pooled)."""
    if rows.shape[1] <= width:
        return rows
    return torch.nn.functional.adaptive_avg_pool1d(rows.unsqueeze(1), width).squeeze(1)


def varying_layer(activations: list[tuple[str, torch.Tensor]]) -> str | None:
    """The last module, in forward order, whose activations (seeds x values, pooled to
    MAX_LAYER_VALUES) vary over the seeds: what coverage can tell apart."""
    for name, rows in reversed(activations):
        if not is_degenerate(seed_spacing(pooled(rows))):
            return name
    return None


@contextmanager
def _faiss_threads() -> Iterator[None]:
    """faiss at FAISS_THREADS for one call, and torch's thread count as it was after it
    (omp_set_num_threads is process-wide: left set, it drops torch to one thread)."""
    torch_threads = torch.get_num_threads()
    faiss.omp_set_num_threads(FAISS_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)


class NoveltyIndex:
    """Coverage vectors seen so far, with Euclidean nearest-neighbour lookups."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index: faiss.Index = faiss.IndexFlatL2(dim)

    def __len__(self) -> int:
        return self.index.ntotal

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        """Euclidean distance (B,) from each vector to its nearest stored one."""
        if len(self) == 0:
            return np.full(vectors.shape[0], np.inf, dtype=np.float32)
        with _faiss_threads():
            squared, _ = self.index.search(vectors, 1)
        return np.sqrt(np.maximum(squared[:, 0], 0))

    @property
    def bytes(self) -> int:
        """What the index holds in memory: the vectors, and the graph's links once HNSW."""
        stored = len(self) * self.dim * 4
        if isinstance(self.index, faiss.IndexHNSWFlat):
            hnsw = self.index.hnsw
            stored += hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8
        return stored

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors) == 0:
            return
        with _faiss_threads():
            self.index.add(vectors)
            if isinstance(self.index, faiss.IndexFlatL2) and len(self) > HNSW_AFTER:
                self._grow_into_hnsw()

    def _grow_into_hnsw(self) -> None:
        stored = self.index.reconstruct_n(0, len(self))
        neighbours, depth = hnsw_parameters(self.dim)
        graph = faiss.IndexHNSWFlat(self.dim, neighbours)
        graph.hnsw.efSearch = depth
        graph.add(stored)
        self.index = graph


@dataclass(frozen=True)
class SignalLayout:
    """The columns of the signals that records track, and their one owner: every module's
    statistics (module by module, STATS within each), then the guiding objectives'
    pressure. Statistics count new lows and highs; pressure only new lows."""

    modules: int
    pressure: int

    @property
    def statistics(self) -> int:
        return self.modules * len(STATS)

    def combine(self, stats: torch.Tensor, pressure: torch.Tensor) -> torch.Tensor:
        """(B, modules, STATS) and (B, pressure) side by side, (B, statistics + pressure); with
        no pressure, the statistics alone, not copied (nobody writes to them)."""
        if not self.pressure:
            return stats.reshape(stats.shape[0], -1)
        return torch.cat((stats.reshape(stats.shape[0], -1), pressure.to(stats.device)), 1)

    def statistic(self, column: int) -> tuple[int, int] | None:
        """The (module, statistic) of a column, or None for a pressure column."""
        return divmod(column, len(STATS)) if column < self.statistics else None


class Records:
    """The lowest and highest value seen of each activation statistic."""

    def __init__(self, stats: torch.Tensor, low_only_from: int | None = None) -> None:
        """``stats``: the starting corpus's statistics, (N, S). Columns from
        ``low_only_from`` on only count new lows (an objective's pressure)."""
        self.low = _nan_reduce(stats, torch.amin, float("inf"))
        self.high = _nan_reduce(stats, torch.amax, float("-inf"))
        self.track_high = torch.ones_like(self.low, dtype=torch.bool)
        #: A record must beat the old one by this share of the statistic's range.
        self.margin = RECORD_MARGIN
        if low_only_from is not None:
            self.track_high[low_only_from:] = False
        self._cached: tuple[object, ...] = (None,)  # see _derived

    def update(self, stats: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
        """Mask (B,) of the examples that set a new record; the records move."""
        stats = stats.reshape(stats.shape[0], -1)
        usable = torch.isfinite(stats) & eligible.view(-1, 1)
        below, above, _ = self._derived()
        lows = torch.where(usable, stats, float("inf")).min(0)
        highs = torch.where(usable, stats, float("-inf")).max(0)
        new_low = lows.values < below
        new_high = (highs.values > above) & self.track_high
        winners = torch.zeros(stats.shape[0], dtype=torch.bool, device=stats.device)
        if not bool((new_low | new_high).any()):
            return winners  # the records stay the same tensors, and what is derived from them
        winners[lows.indices[new_low]] = True
        winners[highs.indices[new_high]] = True
        self.low = torch.where(new_low, lows.values, self.low)
        self.high = torch.where(new_high, highs.values, self.high)
        return winners

    def finite_columns(self) -> torch.Tensor:
        """Indices of statistics that are finite, i.e. worth pushing further."""
        return self._derived()[2]

    def _derived(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(what a new low is under, a new high over, finite_columns): again only once the
        records (new tensors at a new record) or the margin change; most batches set none."""
        key = (id(self.low), id(self.high), self.margin)
        if self._cached[0] != key:  # it holds the tensors: their ids stay theirs
            span = torch.nan_to_num(self.high - self.low, posinf=0.0, neginf=0.0).clamp(min=1e-12)
            margin = self.margin * span
            finite = (torch.isfinite(self.low) & torch.isfinite(self.high)).nonzero().flatten()
            self._cached = (key, self.low, self.high, (self.low - margin, self.high + margin, finite))
        return self._cached[3]  # type: ignore[return-value]


def _nan_reduce(stats: torch.Tensor, reduce: object, empty: float) -> torch.Tensor:
    stats = stats.reshape(stats.shape[0], -1)
    filled = torch.where(torch.isfinite(stats), stats, empty)
    return reduce(filled, 0)  # type: ignore[operator]


class Coverage:
    """Novelty plus records: ``update`` says which examples to keep."""

    def __init__(self, threshold: float, seed_vectors: torch.Tensor, seed_stats: torch.Tensor,
                 low_only_from: int | None = None, adaptive: bool = True) -> None:
        self.threshold = threshold
        #: Whether the threshold grows to keep the novel share near TARGET_NOVEL_SHARE (not
        #: for a --threshold the user gave).
        self.adaptive = adaptive
        self.judged, self._window = 0, [0, 0]  # the window's: kept, judged
        #: The examples of the last update that set a record (B,): what a mutation operator
        #: yields (nnfuzz.schedule).
        self.recorded = torch.zeros(0, dtype=torch.bool)
        self.index = NoveltyIndex(seed_vectors.shape[1])
        self.records = Records(seed_stats, low_only_from)
        self.add(seed_vectors)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, vectors: torch.Tensor) -> None:
        finite = vectors[torch.isfinite(vectors).all(1)]
        self.index.add(_as_faiss(finite))

    def update(self, vectors: torch.Tensor, stats: torch.Tensor, eligible: torch.Tensor,
               parents: torch.Tensor | None = None) -> torch.Tensor:
        """Mask (B,) of eligible examples that are novel or set a record; adds their vectors.

        ``parents``: the coverage vectors (B, D) the examples were mutated from,
        when known. Every corpus vector is in the index, so a mutant within the
        threshold of its parent is not novel: no lookup needed (the triangle
        inequality; exact, not a heuristic). Most mutants are such.
        """
        eligible = eligible & torch.isfinite(vectors).all(1)
        novel = self._novel(vectors, eligible, parents)
        self.recorded = self.records.update(stats, eligible)
        keep = self.recorded | novel
        if kept := int(keep.sum()):  # most batches keep nothing once warmed up: no empty add
            self.add(vectors[keep])
        self._adapt(kept, int(eligible.sum()))
        return keep

    def _adapt(self, kept: int, judged: int) -> None:
        """Grow the threshold and the records' margin while more than TARGET_KEPT_SHARE of
        the mutants are kept: a corpus that keeps most of what it sees floods its disk and
        slows every lookup."""
        self.judged += judged
        self._window[0] += kept
        self._window[1] += judged
        if not self.adaptive or self.judged < ADAPT_AFTER or self._window[1] < ADAPT_EVERY:
            return
        share = self._window[0] / self._window[1]
        if share > TARGET_KEPT_SHARE:
            step = FAR_OVER_STEP if share > 10 * TARGET_KEPT_SHARE else THRESHOLD_STEP
            self.threshold *= step
            self.records.margin = min(1.0, self.records.margin * step)
        self._window = [0, 0]

    def forget(self, max_bytes: float | None, corpus_vectors: torch.Tensor | None) -> bool:
        """Past ``max_bytes``, start the index again from the corpus's own vectors (a resumed
        run starts from no more): novelty is then judged against what the corpus holds, and
        the threshold and records, which stay, keep the search from flooding back. Whether
        it did."""
        if max_bytes is None or corpus_vectors is None or self.index.bytes <= max_bytes:
            return False
        self.index = NoveltyIndex(self.index.dim)
        self.add(corpus_vectors)
        return True

    def take_in(self, vectors: torch.Tensor, stats: torch.Tensor) -> None:
        """Coverage another worker found: its vectors and records become ours."""
        self.records.update(stats, torch.isfinite(vectors).all(1))
        self.add(vectors)

    def _novel(self, vectors: torch.Tensor, eligible: torch.Tensor,
               parents: torch.Tensor | None) -> torch.Tensor:
        novel = torch.zeros_like(eligible)
        if parents is not None:
            near_parent = (vectors - parents).norm(dim=1) <= self.threshold
            eligible = eligible & ~near_parent
        rows = eligible.nonzero().flatten()
        if not len(rows):
            return novel
        distances = torch.from_numpy(self.index.nearest(_as_faiss(vectors[rows])))
        candidates = rows[distances.to(rows.device) > self.threshold]
        novel[_spread_out(vectors[candidates], candidates, self.threshold)] = True
        return novel


def _spread_out(vectors: torch.Tensor, rows: torch.Tensor, threshold: float) -> torch.Tensor:
    """The rows to keep of mutants novel to the index: two of one batch may still lie
    within the threshold of each other; keep the first of any such pair, in order."""
    if len(rows) < 2:
        return rows
    close = (torch.cdist(vectors, vectors) <= threshold).triu(1)
    if not bool(close.any()):
        return rows
    neighbours, dropped = close.tolist(), [False] * len(rows)
    for i in range(len(rows)):
        if not dropped[i]:
            for j in range(i + 1, len(rows)):
                if neighbours[i][j]:
                    dropped[j] = True
    return rows[torch.tensor([not d for d in dropped], device=rows.device)]


def _as_faiss(vectors: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(vectors.detach().float().cpu().numpy())
