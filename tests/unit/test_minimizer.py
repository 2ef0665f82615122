"""Shrinking toward the seed: the same failure kept, masks kept, time bounded."""

from __future__ import annotations

import torch

from nnfuzz.config import Deadline
from nnfuzz.inference import infer_domain
from nnfuzz.reproducer import Failure
from nnfuzz import minimizer
from nnfuzz.minimizer import minimize


def failure_of(inputs: tuple[torch.Tensor, ...], seed: tuple[torch.Tensor, ...]) -> Failure:
    return Failure(inputs=inputs, seed=seed, objective="user", detail="d", signature="s")


def test_only_the_value_the_failure_needs_is_kept_changed() -> None:
    seed = torch.zeros(12)
    failing = torch.rand(12, generator=torch.Generator().manual_seed(0)) + 1.0

    def still_fails(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0][:, 5] > 0.5

    smaller = minimize(failure_of((failing,), (seed,)), still_fails)
    assert (smaller.inputs[0] != seed).nonzero().flatten().tolist() == [5]


def test_past_the_deadline_no_candidate_is_run_and_the_input_is_kept() -> None:
    seed, failing = torch.zeros(12), torch.ones(12)
    calls = []

    def still_fails(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        calls.append(batch[0].shape[0])
        return torch.ones(batch[0].shape[0], dtype=torch.bool)

    smaller = minimize(failure_of((failing,), (seed,)), still_fails,
                       deadline=Deadline.after(-1.0))
    assert calls == []
    assert torch.equal(smaller.inputs[0], failing)


def test_a_mask_is_never_shrunk_on_its_own_but_follows_its_tokens() -> None:
    seeds = (torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]]))
    domain = infer_domain(seeds, [(0, 9), None])
    assert domain.fields[1].kind == "mask"
    failing = (torch.tensor([5, 9, 0, 0]), torch.tensor([1, 1, 0, 0]))

    def still_fails(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0][:, 1] == 9  # the failure needs token 9 at position 1

    smaller = minimize(failure_of(failing, tuple(t[0] for t in seeds)), still_fails, domain)
    tokens, mask = smaller.inputs
    assert tokens.tolist() == [5, 9, 7, 0]
    assert torch.equal(mask, (tokens != 0).long())


def test_a_failure_every_value_matters_to_is_left_after_one_probe_and_said_unchanged() -> None:
    # A flat image (every pixel equal: std 0) fails; its seed is a textured one. Resetting any
    # pixel toward the seed breaks the flatness, so no candidate can be smaller.
    seed = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))
    flat = torch.full((3, 16, 16), 200, dtype=torch.uint8)
    tried = []

    def still_fails(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        tried.append(batch[0].shape[0])
        return batch[0].float().flatten(1).std(1) == 0

    smaller = minimize(failure_of((flat,), (seed,)), still_fails)
    assert torch.equal(smaller.inputs[0], flat)
    assert sum(tried) == minimizer.SINGLE_PROBES  # one batch of single-value probes, no blocks
    note = smaller.metadata["minimized"]
    assert note.startswith("unchanged:") and f"{minimizer.SINGLE_PROBES} candidates" in note
    assert "minimization changed nothing: no value moved toward the seed" in smaller.describe()


def test_a_failure_one_value_can_leave_is_still_shrunk_block_by_block() -> None:
    # Fails while the sum of the first 40 values stays above 10: the line from the seed
    # stops just past a quarter of the way, where all 40 are needed; resetting any of the
    # other 360 keeps the failure, so the probe lets delta debugging run, and it moves
    # every one of them back.
    seed, failing = torch.zeros(400), torch.ones(400)

    def still_fails(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0][:, :40].sum(1) > 10

    smaller = minimize(failure_of((failing,), (seed,)), still_fails)
    assert (smaller.inputs[0] != seed).nonzero().flatten().tolist() == list(range(40))
    assert not smaller.metadata["minimized"].startswith("unchanged:")
