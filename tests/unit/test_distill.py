"""Distillation's set cover: the inputs kept cover every feature some input covers."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.distill import _cell_cover, _greedy_cover

features = st.lists(st.sets(st.integers(min_value=0, max_value=12), max_size=5), max_size=15)


@given(features)
@settings(max_examples=100, deadline=None)
def test_the_chosen_inputs_cover_every_coverable_feature_each_chosen_once(
        cover: list[set[int]]) -> None:
    chosen = _greedy_cover(cover)
    assert len(chosen) == len(set(chosen))
    for inputs in cover:
        if inputs:
            assert inputs & set(chosen), (cover, chosen)


def test_one_input_covering_everything_is_all_that_is_kept() -> None:
    assert _greedy_cover([{0, 1}, {1}, {1, 2}, {1, 3}]) == [1]


def test_inputs_within_the_threshold_of_a_seed_add_no_cell() -> None:
    vectors = torch.tensor([[0.0, 0.0], [0.05, 0.0], [5.0, 5.0]])
    cells = _cell_cover(vectors, torch.tensor([[0.0, 0.0]]), threshold=0.1)
    assert not cells[0] and not cells[1], "both lie within 0.1 of the seed"
    assert 2 in cells[2]
