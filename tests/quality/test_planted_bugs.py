"""nnfuzz finds planted bugs in tiny models that random search around the seeds misses.

Each test gives nnfuzz and random search (the same mutation operators, always
applied to a seed, no coverage feedback) the same number of executions.
Both are deterministic for a run seed, so these are not flaky. Both run
without the edge operator: these bugs sit at a structural edge (a dark input,
an all-padding sequence), which that operator reaches in one step from any
seed (tests/quality/test_edges.py); here the question is what coverage
feedback adds to the other operators.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

import nnfuzz
from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.target import in_memory

#: Executions each side gets.
BUDGET = 20_000


def fuzz_both(model: nn.Module, seeds: torch.Tensor, bounds: tuple[float, float],
              **options: object) -> tuple[nnfuzz.FuzzResult, nnfuzz.FuzzResult]:
    common = dict(bounds=bounds, runs=BUDGET, stop_on_failure=True, seed=0, edges=False, **options)
    guided = nnfuzz.fuzz(model, seeds, **common)
    random = nnfuzz.fuzz(model, seeds, feedback=False, **common)
    return guided, random


class DeadReluStd(nn.Module):
    """Hidden ReLUs normalised by their std without an epsilon: NaN when all are dead."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.hidden = nn.Linear(32, 24)
        self.relu = nn.ReLU()
        self.head = nn.Linear(24, 5)
        with torch.no_grad():
            # Positive weights and a negative bias: every unit is alive on bright
            # inputs and dead only when the input is dark almost everywhere.
            self.hidden.weight.copy_(torch.rand(24, 32, generator=generator) / 8)
            self.hidden.bias.fill_(-0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.hidden(x))  # (B, 24)
        return self.head((h - h.mean(1, keepdim=True)) / h.std(1, keepdim=True))


def test_finds_the_nan_of_an_all_dead_relu_layer_that_random_search_misses() -> None:
    seeds = 0.6 + 0.4 * torch.rand(16, 32, generator=torch.Generator().manual_seed(1))
    guided, random = fuzz_both(DeadReluStd(), seeds, (0.0, 1.0))
    assert guided.failures, "nnfuzz did not reach the all-dead layer"
    assert guided.failures[0].objective == "nonfinite"
    assert "head" in guided.failures[0].detail
    assert not random.failures, "random search found it: the planted bug is too easy"


class BrightnessBucket(nn.Module):
    """A lookup table indexed by total intensity, too short for very bright inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(32, 4)
        self.table = nn.Parameter(torch.ones(27, 4))  # totals 0..26.99 only; the max is 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x) * self.table[x.sum(1).long()]


def test_finds_an_index_overflow_that_random_search_misses() -> None:
    seeds = 0.3 * torch.rand(16, 32, generator=torch.Generator().manual_seed(2))
    guided, random = fuzz_both(BrightnessBucket(), seeds, (0.0, 1.0))
    assert guided.failures, "nnfuzz did not reach the overflowing index"
    failure = guided.failures[0]
    assert failure.objective == "exception"
    assert "IndexError" in failure.detail and "test_planted_bugs.py" in failure.detail
    assert not random.failures, "random search found it: the planted bug is too easy"


class AllPaddingMeanPool(nn.Module):
    """Mean pooling over real tokens divides by their count: NaN for padding only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed = nn.Embedding(30, 8, padding_idx=0)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).float()  # (B, L)
        pooled = (self.embed(tokens) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled)


def test_finds_the_nan_of_an_all_padding_token_sequence_that_random_search_misses() -> None:
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randint(1, 30, (16, 12), generator=generator)
    lengths = torch.randint(8, 13, (16, 1), generator=generator)
    tokens[torch.arange(12).view(1, -1) >= lengths] = 0  # padded at the end with 0
    guided, random = fuzz_both(AllPaddingMeanPool(), tokens, (0, 29))
    assert guided.failures, "nnfuzz did not reach an all-padding sequence"
    assert (guided.failures[0].inputs[0] == 0).all()
    assert not random.failures, "random search found it: the planted bug is too easy"


def test_the_radius_keeps_every_corpus_input_near_its_seed_and_out_of_reach_of_the_bug(
        in_process: Callable[..., InProcess]) -> None:
    seeds = 0.6 + 0.4 * torch.rand(16, 32, generator=torch.Generator().manual_seed(1))
    config = FuzzConfig(runs=3000, radius=0.05, seed=0)
    fuzzer = in_process(in_memory(DeadReluStd(), seeds, bounds=(0.0, 1.0)), config)
    result = fuzzer.run()
    assert not result.failures, "the all-dead region is farther than 0.05 from every seed"
    assert result.corpus > len(seeds), "the corpus should still grow inside the radius"
    corpus = fuzzer.engine.corpus
    (inputs,), (roots,) = corpus.elements(), corpus.root_inputs(corpus.element_root_indices())
    assert float((inputs - roots).abs().max()) <= 0.05 + 1e-6
