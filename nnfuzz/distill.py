"""Corpus distillation: the fewest corpus inputs that reach the same coverage.

A corpus that grew over many nightly runs holds many inputs whose coverage
another input (or a seed) already gives. Like libFuzzer's ``-merge=1``, this
runs every input once and keeps a smallest-first greedy set cover of what
they reach:

- *cells*: each corpus input's coverage vector; an input covers the cells of
  every input within the coverage threshold of it. Cells a seed already
  covers need no corpus input (the seeds are always there: ``seeds()``).
- *records*: the lowest and highest value of each activation statistic that
  beats the seeds'; an input holding that extreme covers it.

Greedy set cover (take the input covering most of what is still uncovered,
ties to the earlier file name) is within a log factor of the smallest cover
and deterministic. Every input removed is within the threshold of one kept or
of a seed, and every record survives.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
import torch

from nnfuzz.corpus_files import CorpusFolder, starting_inputs
from nnfuzz.coverage import derive_threshold
from nnfuzz.domain import Domain, Inputs
from nnfuzz.errors import CorpusError
from nnfuzz.execution import Execution, Executor
from nnfuzz.run_record import coverage_settings

#: Inputs per forward pass while measuring the corpus.
BATCH = 256


if TYPE_CHECKING:
    from nnfuzz.target import Target


@dataclass
class Distilled:
    """What distillation kept and why."""

    kept: list[Path]
    removed: list[Path]
    #: Files that are not inputs of this target: left alone.
    skipped: list[str] = field(default_factory=list)
    threshold: float = 0.0
    #: Coverage the corpus adds beyond the seeds: vectors farther than the threshold
    #: from every seed, and record extremes the seeds do not reach.
    cells: int = 0
    records: int = 0


def distill_corpus(target: "Target", folder: Path, threshold: float | None = None,
                    layers: tuple[str, ...] = (), dry_run: bool = False) -> Distilled:
    """``nnfuzz corpus minimize``: distill ``folder`` with the run's threshold and layers
    (from run.json beside it, unless given) and remove what is not kept (unless
    ``dry_run``)."""
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such folder: give a corpus folder (OUT/corpus).")
    run_threshold, run_layers = coverage_settings(folder)
    domain = target.domain(*starting_inputs(target.seeds, target.input_names, [folder]))
    executor = Executor(target.model.eval(), layers=list(layers or run_layers), source=target.path,
                        names=domain.names)
    try:
        result = distill_folder(folder, domain, executor, target.seeds, threshold or run_threshold)
    finally:
        executor.close()
    if not dry_run:
        for path in result.removed:
            CorpusFolder(folder).delete(path.name)
    return result


def distill_folder(folder: Path, domain: Domain, executor: Executor, seeds: Inputs | None,
                   threshold: float | None) -> Distilled:
    """Which files of ``folder`` to keep: a greedy set cover of their coverage."""
    paths: list[Path] = []
    rows: list[Inputs] = []
    skipped: list[str] = []
    for path, inputs, _, _ in CorpusFolder(folder).scan(domain):
        if inputs is None:
            skipped.append(str(path))
        else:
            paths.append(path)
            rows.append(inputs)
    if not rows:
        return Distilled(kept=[], removed=[], skipped=skipped)
    corpus = tuple(torch.stack(column) for column in zip(*rows))
    vectors, stats = _measure(executor, corpus)
    seed_vectors, seed_stats = _measure(executor, seeds) if seeds is not None else (None, None)
    if threshold is None:
        threshold = derive_threshold(seed_vectors if seed_vectors is not None else vectors)
    cells = _cell_cover(vectors, seed_vectors, threshold)
    records = _record_cover(stats, seed_stats)
    kept = set(_greedy_cover(cells + records))
    return Distilled(kept=[p for i, p in enumerate(paths) if i in kept],
                     removed=[p for i, p in enumerate(paths) if i not in kept],
                     skipped=skipped, threshold=threshold,
                     cells=sum(1 for c in cells if c), records=len(records))


def _measure(executor: Executor, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage vectors (N, D) and flattened module statistics (N, S) of ``inputs``."""
    executions: list[Execution] = []
    count = inputs[0].shape[0]
    for start in range(0, count, BATCH):
        executions.append(executor.run(tuple(t[start:start + BATCH].to(executor.device)
                                             for t in inputs)))
    vectors = torch.cat([e.coverage.float().cpu() for e in executions])
    stats = torch.cat([e.stats.reshape(e.size, -1).float().cpu() for e in executions])
    return vectors, stats


def _cell_cover(vectors: torch.Tensor, seed_vectors: torch.Tensor | None,
                threshold: float) -> list[set[int]]:
    """For each corpus input not already covered by a seed: the inputs that cover it."""
    finite = torch.isfinite(vectors).all(1)
    points = np.ascontiguousarray(torch.nan_to_num(vectors).numpy(), dtype=np.float32)
    radius = np.float32(threshold) ** 2
    covered_by_seed = np.zeros(len(points), dtype=bool)
    if seed_vectors is not None:
        seeds = seed_vectors[torch.isfinite(seed_vectors).all(1)].numpy().astype(np.float32)
        if len(seeds):
            index = faiss.IndexFlatL2(points.shape[1])
            index.add(np.ascontiguousarray(seeds))
            squared, _ = index.search(points, 1)
            covered_by_seed = squared[:, 0] <= radius
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    limits, _, neighbours = index.range_search(points, float(radius))
    cover: list[set[int]] = []
    for point in range(len(points)):
        if covered_by_seed[point]:
            cover.append(set())
        elif not bool(finite[point]):
            cover.append({point})  # non-finite coverage is its own cell
        else:
            cover.append({int(n) for n in neighbours[limits[point]:limits[point + 1]]
                          if bool(finite[int(n)])} | {point})
    return cover


def _record_cover(stats: torch.Tensor, seed_stats: torch.Tensor | None) -> list[set[int]]:
    """For each statistic's lowest and highest value beyond the seeds': the inputs holding it."""
    cover = []
    finite = torch.where(torch.isfinite(stats), stats, torch.nan)
    for column in range(finite.shape[1]):
        values = finite[:, column]
        present = ~torch.isnan(values)
        if not bool(present.any()):
            continue
        seeds = seed_stats[:, column] if seed_stats is not None else None
        seeds = seeds[torch.isfinite(seeds)] if seeds is not None else None
        low, high = values[present].min(), values[present].max()
        if seeds is None or not len(seeds) or bool(low < seeds.min()):
            cover.append({int(i) for i in (values == low).nonzero().flatten()})
        if seeds is None or not len(seeds) or bool(high > seeds.max()):
            cover.append({int(i) for i in (values == high).nonzero().flatten()})
    return cover


def _greedy_cover(features: list[set[int]]) -> list[int]:
    """Lazy greedy set cover: inputs, in the order chosen, until every feature is covered."""
    covers: dict[int, set[int]] = {}
    for feature, inputs in enumerate(features):
        for i in inputs:
            covers.setdefault(i, set()).add(feature)
    uncovered = {f for f, inputs in enumerate(features) if inputs}
    heap = [(-len(fs), i) for i, fs in covers.items()]
    heapq.heapify(heap)
    chosen: list[int] = []
    while uncovered and heap:
        negative, i = heapq.heappop(heap)
        gain = len(covers[i] & uncovered)
        if gain == 0:
            continue
        if gain < -negative:  # stale: push back with its true gain
            heapq.heappush(heap, (-gain, i))
            continue
        chosen.append(i)
        uncovered -= covers[i]
    return sorted(chosen)
