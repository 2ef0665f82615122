"""The training state's judgement of each step (nnfuzz.training.state)."""

from __future__ import annotations

import torch
from torch import nn

from nnfuzz.target import in_memory
from nnfuzz.training.setup import TrainConfig, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Step


def state_for(loss, optimizer: str = "adam") -> TrainingState:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    seeds = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    target = in_memory(nn.Linear(4, 2), seeds, bounds=(0.0, 1.0), targets=torch.zeros(8).long(),
                       loss=loss)
    return TrainingState(target, training_set(target), TrainConfig(optimizer=optimizer))


ALL = Step(torch.arange(8), (None,))


def test_a_finite_gradient_whose_square_overflows_breaks_adams_state_not_the_weights() -> None:
    # Adam's second moment holds g**2 / 1000: for g = 1e21 that is past float32's 3.4e38,
    # while the update m / (sqrt(v) + eps) stays finite (0): only the optimizer's state says so.
    state = state_for(lambda output, target: 1e21 * output.sum(1))
    broken = state.apply(ALL)
    assert broken is not None and broken.where == "optimizer state exp_avg_sq of weight"
    assert broken.kind == "Inf" and all(torch.isfinite(p).all() for p in state.model.parameters())


def test_each_kind_of_break_is_named_where_it_first_shows() -> None:
    nan_loss = state_for(lambda output, target: output.sum(1) * torch.nan)
    assert nan_loss.apply(ALL).signature == "train-nonfinite:loss"  # type: ignore[union-attr]
    # Finite loss, infinite gradient: sqrt at 0 has an infinite slope.
    steep = state_for(lambda output, target: (output - output.detach()).abs().sqrt().sum(1))
    assert steep.apply(ALL).where.startswith("gradient of ")  # type: ignore[union-attr]
    fine = state_for(lambda output, target: nn.functional.cross_entropy(output, target,
                                                                        reduction="none"))
    assert [fine.apply(ALL) for _ in range(5)] == [None] * 5


def test_the_users_model_is_copied_not_trained() -> None:
    state = state_for(lambda output, target: output.sum(1))
    before = {k: v.clone() for k, v in state.target.model.state_dict().items()}
    for _ in range(3):
        state.apply(ALL)
    assert all(torch.equal(before[k], v) for k, v in state.target.model.state_dict().items())
    assert not torch.equal(state.model.weight, before["weight"])
