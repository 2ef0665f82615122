"""Coverage: the derived threshold, nearest-neighbour lookups, novelty and records."""

from __future__ import annotations

import itertools

import faiss
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import nnfuzz.coverage
from nnfuzz.coverage import (FALLBACK_THRESHOLD, Coverage, NoveltyIndex, Records,
                             derive_threshold)

SETTINGS = settings(max_examples=30, deadline=None)


# --- derive_threshold ----------------------------------------------------------------

def grid(spacing: float, dims: int, side: int) -> torch.Tensor:
    axis = [spacing * i for i in range(side)]
    return torch.tensor(list(itertools.product(axis, repeat=dims)), dtype=torch.float32)


def test_the_threshold_of_a_grid_with_spacing_one_is_one() -> None:
    assert derive_threshold(grid(1.0, 2, 5)) == pytest.approx(1.0)


@SETTINGS
@given(st.floats(0.01, 100.0), st.integers(1, 3), st.integers(2, 6), st.floats(-50, 50))
def test_the_threshold_of_a_grid_is_its_spacing(spacing: float, dims: int, side: int,
                                                offset: float) -> None:
    points = grid(spacing, dims, side) + offset
    assert derive_threshold(points) == pytest.approx(spacing, rel=1e-3, abs=1e-4)


def test_the_threshold_is_the_median_nearest_neighbour_distance() -> None:
    # Nearest-neighbour distances 1, 1, 2, 3, 3 (points on a line): median 2.
    points = torch.tensor([[0.0], [1.0], [3.0], [6.0], [9.0]])
    assert derive_threshold(points) == pytest.approx(2.0)


def test_one_vector_or_identical_vectors_give_the_fallback_threshold() -> None:
    assert derive_threshold(torch.ones(1, 4)) == FALLBACK_THRESHOLD
    assert derive_threshold(torch.ones(7, 4)) == FALLBACK_THRESHOLD


def test_non_finite_vectors_do_not_count_toward_the_threshold() -> None:
    points = torch.cat([grid(1.0, 2, 4), torch.tensor([[float("nan"), 0.0], [float("inf"), 1.0]])])
    assert derive_threshold(points) == pytest.approx(1.0)


def test_duplicate_vectors_do_not_shrink_the_threshold_to_zero() -> None:
    points = torch.cat([grid(2.0, 2, 3)] * 3)
    assert derive_threshold(points) == pytest.approx(2.0)


# --- NoveltyIndex --------------------------------------------------------------------

def brute_force(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    gaps = queries[:, None, :].astype(np.float64) - stored[None, :, :].astype(np.float64)
    return np.sqrt((gaps ** 2).sum(-1)).min(1)


def assert_close_distances(found: np.ndarray, exact: np.ndarray, scale: float) -> None:
    # faiss computes |x|^2 + |y|^2 - 2xy in float32: compare squared distances.
    tolerance = 1e-4 * (1.0 + scale ** 2)
    assert np.all(np.abs(found.astype(np.float64) ** 2 - exact ** 2) <= tolerance), (found, exact)


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 80), st.integers(1, 10), st.integers(0, 2**31 - 1))
def test_nearest_matches_brute_force_distances(dim: int, count: int, queries: int,
                                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    stored = rng.normal(size=(count, dim)).astype(np.float32)
    probes = rng.normal(size=(queries, dim)).astype(np.float32)
    index = NoveltyIndex(dim)
    for chunk in np.array_split(stored, 3):
        index.add(np.ascontiguousarray(chunk))
    assert len(index) == count
    found = index.nearest(probes)
    assert found.shape == (queries,)
    scale = float(np.abs(np.concatenate([stored, probes])).max()) * np.sqrt(dim)
    assert_close_distances(found, brute_force(stored, probes), scale)


def test_nearest_in_an_empty_index_is_infinitely_far() -> None:
    found = NoveltyIndex(3).nearest(np.zeros((2, 3), dtype=np.float32))
    assert np.all(np.isinf(found))


def test_nearest_still_matches_brute_force_after_the_switch_to_hnsw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nnfuzz.coverage, "HNSW_AFTER", 60)
    rng = np.random.default_rng(0)
    dim = 6
    stored = rng.normal(size=(400, dim)).astype(np.float32)
    index = NoveltyIndex(dim)
    for chunk in np.array_split(stored, 10):
        index.add(np.ascontiguousarray(chunk))
    assert isinstance(index.index, faiss.IndexHNSWFlat), "the index never switched to HNSW"
    assert len(index) == 400
    probes = rng.normal(size=(100, dim)).astype(np.float32)
    found = index.nearest(probes)
    exact = brute_force(stored, probes)
    scale = float(np.abs(stored).max()) * np.sqrt(dim)
    tolerance = 1e-4 * (1.0 + scale ** 2)
    # Approximate search may miss the nearest, but never reports a distance below it...
    assert np.all(found.astype(np.float64) ** 2 >= exact ** 2 - tolerance)
    # ... and on a graph this size it almost always finds it.
    hits = np.abs(found.astype(np.float64) ** 2 - exact ** 2) <= tolerance
    assert hits.mean() >= 0.95
    # Every stored vector, the ones added before the switch included, is found at distance 0.
    assert np.all(index.nearest(stored[::7]) <= 1e-3)


# --- Coverage.update -----------------------------------------------------------------

def coverage(threshold: float = 1.0) -> Coverage:
    seed_vectors = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    seed_stats = torch.tensor([[[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]])
    return Coverage(threshold, seed_vectors, seed_stats)


def ordinary_stats(count: int) -> torch.Tensor:
    """Statistics inside the seeds' range: they set no record."""
    return torch.full((count, 1, 3), 0.5)


def test_a_vector_farther_than_the_threshold_is_kept_and_one_closer_is_not() -> None:
    cover = coverage(1.0)
    vectors = torch.tensor([[0.0, 2.0], [10.0, 0.5]])
    keep = cover.update(vectors, ordinary_stats(2), torch.ones(2, dtype=torch.bool))
    assert keep.tolist() == [True, False]
    assert len(cover) == 3


def test_a_kept_vector_is_remembered_so_its_twin_is_no_longer_novel() -> None:
    cover = coverage(1.0)
    first = cover.update(torch.tensor([[0.0, 5.0]]), ordinary_stats(1), torch.ones(1, dtype=torch.bool))
    again = cover.update(torch.tensor([[0.0, 5.4]]), ordinary_stats(1), torch.ones(1, dtype=torch.bool))
    assert first.tolist() == [True] and again.tolist() == [False]


def test_of_two_novel_vectors_close_to_each_other_in_one_batch_only_one_is_kept() -> None:
    cover = coverage(1.0)
    vectors = torch.tensor([[5.0, 5.0], [5.0, 5.5], [-5.0, -5.0]])
    keep = cover.update(vectors, ordinary_stats(3), torch.ones(3, dtype=torch.bool))
    assert keep.tolist() == [True, False, True]
    assert len(cover) == 4


def test_ineligible_and_non_finite_vectors_are_never_kept() -> None:
    cover = coverage(1.0)
    vectors = torch.tensor([[50.0, 50.0], [float("nan"), 30.0], [-40.0, float("inf")]])
    eligible = torch.tensor([False, True, True])
    keep = cover.update(vectors, ordinary_stats(3), eligible)
    assert keep.tolist() == [False, False, False]
    assert len(cover) == 2


def test_a_vector_that_is_not_novel_is_kept_when_it_sets_a_record() -> None:
    cover = coverage(1.0)
    stats = ordinary_stats(2)
    stats[1, 0, 2] = 5.0
    keep = cover.update(torch.tensor([[0.0, 0.1], [10.0, 0.1]]), stats,
                        torch.ones(2, dtype=torch.bool))
    assert keep.tolist() == [False, True]


# --- Records ---------------------------------------------------------------------------

def test_an_example_that_sets_a_new_high_or_low_is_flagged_and_moves_the_record() -> None:
    records = Records(torch.tensor([[0.0], [10.0]]))
    flagged = records.update(torch.tensor([[5.0], [11.0], [-2.0]]), torch.ones(3, dtype=torch.bool))
    assert flagged.tolist() == [False, True, True]
    assert records.high.tolist() == [11.0] and records.low.tolist() == [-2.0]


def test_an_example_that_does_not_beat_the_record_by_the_margin_is_not_flagged() -> None:
    # Span 10 and a 1% margin: a record must move by more than 0.1.
    records = Records(torch.tensor([[0.0], [10.0]]))
    flagged = records.update(torch.tensor([[10.05], [-0.05], [10.0]]),
                             torch.ones(3, dtype=torch.bool))
    assert flagged.tolist() == [False, False, False]
    assert records.high.tolist() == [10.0] and records.low.tolist() == [0.0]


def test_only_the_most_extreme_example_of_a_batch_sets_the_record() -> None:
    records = Records(torch.tensor([[0.0], [10.0]]))
    flagged = records.update(torch.tensor([[12.0], [15.0], [13.0]]), torch.ones(3, dtype=torch.bool))
    assert flagged.tolist() == [False, True, False]
    assert records.high.tolist() == [15.0]


def test_each_statistic_keeps_its_own_records() -> None:
    records = Records(torch.tensor([[0.0, 100.0], [1.0, 200.0]]))
    flagged = records.update(torch.tensor([[2.0, 150.0], [0.5, 250.0], [0.5, 150.0]]),
                             torch.ones(3, dtype=torch.bool))
    assert flagged.tolist() == [True, True, False]


def test_ineligible_or_non_finite_statistics_set_no_record() -> None:
    records = Records(torch.tensor([[0.0], [10.0]]))
    flagged = records.update(torch.tensor([[100.0], [float("inf")], [float("nan")]]),
                             torch.tensor([False, True, True]))
    assert flagged.tolist() == [False, False, False]
    assert records.high.tolist() == [10.0]


@SETTINGS
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=10),
       st.lists(st.floats(-2e3, 2e3), min_size=1, max_size=10))
def test_records_flag_exactly_the_batch_extremes_that_beat_the_record_by_the_margin(
        seed_values: list[float], values: list[float]) -> None:
    records = Records(torch.tensor(seed_values, dtype=torch.float32).view(-1, 1))
    low, high = float(records.low[0]), float(records.high[0])
    margin = nnfuzz.coverage.RECORD_MARGIN * max(high - low, 1e-12)
    batch = torch.tensor(values, dtype=torch.float32).view(-1, 1)
    lowest, highest = float(batch.min()), float(batch.max())
    # Values within rounding of the margin could go either way: not this test's business.
    assume(abs(lowest - (low - margin)) > 1e-3 * margin + 1e-4)
    assume(abs(highest - (high + margin)) > 1e-3 * margin + 1e-4)
    flagged = records.update(batch, torch.ones(len(values), dtype=torch.bool))
    expected = set()
    if lowest < low - margin:
        expected.add(values.index(min(values, key=lambda v: float(torch.tensor(v)))))
        assert float(records.low[0]) == lowest
    else:
        assert float(records.low[0]) == low
    if highest > high + margin:
        expected.add(values.index(max(values, key=lambda v: float(torch.tensor(v)))))
        assert float(records.high[0]) == highest
    else:
        assert float(records.high[0]) == high
    flagged_rows = set(flagged.nonzero().flatten().tolist())
    # With ties, any one of the tied rows may be the one flagged.
    assert len(flagged_rows) == len(expected)
    assert all(float(batch[row]) in (lowest, highest) for row in flagged_rows)


@pytest.mark.parametrize("dim, neighbours, depth",
                         [(10, 8, 32), (64, 32, 16), (1000, 32, 16), (4096, 16, 16)])
def test_the_hnsw_graph_takes_the_settings_measured_for_its_width(
        monkeypatch: pytest.MonkeyPatch, dim: int, neighbours: int, depth: int) -> None:
    monkeypatch.setattr(nnfuzz.coverage, "HNSW_AFTER", 60)
    index = NoveltyIndex(dim)
    index.add(np.random.default_rng(0).normal(size=(100, dim)).astype(np.float32))
    assert isinstance(index.index, faiss.IndexHNSWFlat)
    assert (index.index.hnsw.nb_neighbors(1), index.index.hnsw.efSearch) == (neighbours, depth)
