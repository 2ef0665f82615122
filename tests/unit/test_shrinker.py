"""Shrinking toward the seed: the same failure kept, masks kept, time bounded."""

from __future__ import annotations

import time

import torch

from nnfuzz.inference import infer_domain
from nnfuzz.reproducer import Failure
from nnfuzz.shrinker import minimize


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
                       deadline=time.monotonic() - 1.0)
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
