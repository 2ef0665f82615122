"""nnfuzz.fuzz is a function of (model, seeds, options): the same seed, the same run."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import nnfuzz
from nnfuzz import FuzzResult

RUNS = 3000
WIDTH = 6


class DividesByHiddenSum(nn.Module):
    """A ReLU MLP whose output is divided by the sum of its hidden activations.

    Hidden unit i is ``d_i * (x_i - 0.5)``, so every unit is dead (and the
    output 0/0 = NaN) only when every coordinate is below 0.5; the seeds have
    every coordinate in [0.6, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(WIDTH, WIDTH)
        self.relu = nn.ReLU()
        self.head = nn.Linear(WIDTH, 3)
        with torch.no_grad():
            scale = torch.linspace(1.0, 2.0, WIDTH)
            self.hidden.weight.copy_(torch.diag(scale))
            self.hidden.bias.copy_(-0.5 * scale)
            self.head.weight.copy_(torch.linspace(-1, 1, 3 * WIDTH).view(3, WIDTH))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.hidden(x))
        return self.head(h) / h.sum(1, keepdim=True)


def seeds() -> torch.Tensor:
    return 0.6 + 0.4 * torch.rand(8, WIDTH, generator=torch.Generator().manual_seed(0))


def run(seed: int, out: Path | None = None) -> FuzzResult:
    return nnfuzz.fuzz(DividesByHiddenSum(), seeds(), bounds=(0.0, 1.0), runs=RUNS, seed=seed,
                       batch_size=50, out=out, stop_on_failure=False)  # the whole run, compared


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_the_same_seed_gives_the_same_failures_and_the_same_corpus(tmp_path: Path) -> None:
    first, second = run(seed=7, out=tmp_path / "a"), run(seed=7, out=tmp_path / "b")
    assert first.failures, "the planted NaN was not found: the comparison would be empty"
    assert len(first.failures) == len(second.failures)
    for one, other in zip(first.failures, second.failures):
        assert one.objective == other.objective == "nonfinite"
        assert one.signature == other.signature
        assert one.detail == other.detail
        assert len(one.inputs) == len(other.inputs)
        for a, b in zip(one.inputs, other.inputs):
            assert a.dtype == b.dtype and torch.equal(a, b), "failing inputs differ"
        for a, b in zip(one.seed, other.seed):
            assert torch.equal(a, b), "the seeds the failures came from differ"
        assert one.metadata["found_after_execs"] == other.metadata["found_after_execs"]
        assert one.metadata["mutations"] == other.metadata["mutations"]
        assert one.metadata["distance"] == other.metadata["distance"]
    assert first.execs == second.execs == RUNS
    assert first.corpus == second.corpus
    assert first.coverage == second.coverage
    assert first.hits == second.hits
    assert first.threshold == second.threshold
    # The output folders hold the same corpus files and reproducers, by content hash.
    assert names(tmp_path / "a" / "corpus") == names(tmp_path / "b" / "corpus")
    assert len(names(tmp_path / "a" / "corpus")) == first.corpus - len(seeds())
    assert names(tmp_path / "a" / "crashes") == names(tmp_path / "b" / "crashes")


def test_the_failure_found_is_the_planted_bug() -> None:
    result = run(seed=7)
    failure = result.failures[0]
    # A unit is dead at exactly 0.5 too (relu(d * 0) = 0): a descent walk can stop there.
    assert bool((failure.inputs[0] <= 0.5).all()), "a NaN needs every hidden unit dead"
    with torch.no_grad():
        output = DividesByHiddenSum()(failure.inputs[0].unsqueeze(0))
    assert not bool(torch.isfinite(output).all())


def test_a_different_seed_explores_differently() -> None:
    first, other = run(seed=7), run(seed=8)
    same_failures = (len(first.failures) == len(other.failures) and all(
        torch.equal(a.inputs[0], b.inputs[0]) for a, b in zip(first.failures, other.failures)))
    assert not (same_failures and first.corpus == other.corpus and first.hits == other.hits), (
        "seeds 7 and 8 gave the very same run: the run seed is not used")


def test_the_operator_schedule_is_deterministic_and_changes_what_is_dealt(tmp_path: Path) -> None:
    """``schedule=True`` (nnfuzz.schedule, off by default): the run is still a function of its
    seed, and the loop feeds the schedule its records, so the corpus it grows is not the
    uniform draw's."""
    def scheduled(out: Path, schedule: bool) -> FuzzResult:
        return nnfuzz.fuzz(DividesByHiddenSum(), seeds(), bounds=(0.0, 1.0), runs=RUNS, seed=7,
                           batch_size=50, out=out, stop_on_failure=False, schedule=schedule)

    first, second = scheduled(tmp_path / "a", True), scheduled(tmp_path / "b", True)
    uniform = scheduled(tmp_path / "c", False)
    assert names(tmp_path / "a" / "corpus") == names(tmp_path / "b" / "corpus")
    assert [f.signature for f in first.failures] == [f.signature for f in second.failures]
    assert names(tmp_path / "a" / "corpus") != names(tmp_path / "c" / "corpus"), \
        "the schedule changed nothing: is the loop telling the Mutator its records?"
    assert uniform.failures, "the planted NaN is found either way"
