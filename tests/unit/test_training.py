"""The training state's judgement of each step (nnfuzz.training.state and .objectives), and
the hyperparameters' ranges (nnfuzz.training.hyperparameters)."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nnfuzz.errors import TargetError, UsageError
from nnfuzz.target import in_memory
from nnfuzz.training import hyperparameters
from nnfuzz.training.objectives import Judge
from nnfuzz.training.setup import TrainConfig, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Step

LABELS = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])


def state_for(loss, optimizer: str = "adam", model: nn.Module | None = None,  # type: ignore[no-untyped-def]
              objectives: tuple[str, ...] = (), values: dict[str, float] | None = None,
              **fields) -> TrainingState:
    torch.manual_seed(0)
    seeds = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    target = in_memory(model or nn.Linear(4, 2), seeds, bounds=(0.0, 1.0), targets=LABELS,
                       loss=loss, **fields)
    return TrainingState(target, training_set(target),
                         TrainConfig(optimizer=optimizer, objectives=objectives), values=values)


def xent(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output, target, reduction="none")


ALL = Step(torch.arange(8), (None,))


def test_a_finite_gradient_whose_square_overflows_breaks_adams_state_not_the_weights() -> None:
    # Adam's second moment holds g**2 / 1000: for g = 1e21 that is past float32's 3.4e38,
    # while the update m / (sqrt(v) + eps) stays finite (0): only the optimizer's state says so.
    state = state_for(lambda output, target: 1e21 * output.sum(1), objectives=("nonfinite",))
    broken = state.apply(ALL)
    assert broken is not None and broken.where == "optimizer state exp_avg_sq of weight"
    assert broken.what == "Inf in the training optimizer state exp_avg_sq of weight"
    assert all(torch.isfinite(p).all() for p in state.model.parameters())
    # With every objective on, the gradient of 1e21 is named first: it explodes.
    assert state_for(lambda output, target: 1e21 * output.sum(1)).apply(ALL).objective == "exploding"  # type: ignore[union-attr]


def test_each_kind_of_break_is_named_where_it_first_shows() -> None:
    nan_loss = state_for(lambda output, target: output.sum(1) * torch.nan)
    assert nan_loss.apply(ALL).signature == "train-nonfinite:loss"  # type: ignore[union-attr]
    # Finite loss, infinite gradient: sqrt at 0 has an infinite slope.
    steep = state_for(lambda output, target: (output - output.detach()).abs().sqrt().sum(1))
    assert steep.apply(ALL).where.startswith("gradient of ")  # type: ignore[union-attr]
    fine = state_for(xent)
    assert [fine.apply(ALL) for _ in range(5)] == [None] * 5


def test_a_gradient_past_the_norm_explodes_and_one_below_does_not() -> None:
    big = state_for(lambda output, target: 1e6 * output.sum(1))
    broken = big.apply(ALL)
    assert broken is not None and broken.signature == "train-exploding" and broken.step == 1
    assert big.gradient_norm > 1e5 and broken.detail.startswith("gradient norm ")
    assert state_for(lambda output, target: 1e2 * output.sum(1)).apply(ALL) is None


def test_a_relu_layer_dead_on_the_probe_is_named() -> None:
    dead = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)  # no input in [0, 1] lifts a unit above 0
    broken = state_for(xent, model=dead).apply(ALL)
    assert broken is not None and broken.signature == "train-dead:1"
    assert broken.what == "100% of ReLU layer '1' inactive on the probe"
    alive = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        alive[0].bias.fill_(1.0)
    assert state_for(xent, model=alive).apply(ALL) is None
    # Off unless chosen: the same dead layer with nonfinite alone trains on.
    assert state_for(xent, model=dead, objectives=("nonfinite",)).apply(ALL) is None


def test_a_loss_that_grows_past_the_factor_diverges_before_it_overflows() -> None:
    # SGD at lr 2 on a squared output overshoots by 3x each step: the loss grows ~9x a step.
    state = state_for(lambda output, target: output.square().sum(1), optimizer="sgd",
                      values={"lr": 2.0})
    found = [state.apply(ALL) for _ in range(4)]
    broken = next(b for b in found if b is not None)
    assert broken.objective == "diverge" and broken.step <= 3
    assert broken.what.startswith("probe loss ") and "its start" in broken.what


def test_a_users_train_objective_sees_each_step_and_names_it() -> None:
    seen: list[int] = []

    def third_step(view) -> bool:  # type: ignore[no-untyped-def]
        seen.append(view.step)
        return view.step == 3 and view.labels.shape == (8,)

    state = state_for(xent, train_objectives=[third_step])
    found = [state.apply(ALL) for _ in range(3)]
    assert found[:2] == [None, None] and seen == [1, 2, 3]
    assert found[2] is not None and found[2].signature == "train-third_step"
    assert found[2].what == "objective third_step returned True"


def test_an_unknown_objective_is_a_usage_error_naming_the_choices() -> None:
    state = state_for(xent)
    with pytest.raises(UsageError, match="choose nonfinite, exploding, dead, diverge"):
        Judge(state.target, state.data, TrainConfig(objectives=("nan",)))


def test_label_noise_trains_on_the_donors_labels_and_the_hyperparameters_are_set() -> None:
    state = state_for(xent, optimizer="sgd", values={"lr": 0.25, "weight_decay": 0.01})
    donors = torch.tensor([1, 1, 2, 3, 4, 5, 6, 6])
    _, labels = state.batch(Step(torch.arange(8), (None,), donors))
    assert torch.equal(labels, LABELS[donors])
    assert Step(torch.arange(8), (None,), torch.arange(8)).perturbed is False
    assert all(g["lr"] == 0.25 and g["weight_decay"] == 0.01 for g in state.optimizer.param_groups)


def test_the_users_model_is_copied_not_trained() -> None:
    state = state_for(lambda output, target: output.sum(1))
    before = {k: v.clone() for k, v in state.target.model.state_dict().items()}
    for _ in range(3):
        state.apply(ALL)
    assert all(torch.equal(before[k], v) for k, v in state.target.model.state_dict().items())
    assert not torch.equal(state.model.weight, before["weight"])


ADAM = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)


@pytest.mark.parametrize("given, says", [
    ([("lr", (0, 1))], "give a dict of name -> (low, high)"),
    ({"learning_rate": (1e-4, 1e-1)}, "names 'learning_rate', which neither the batch nor the "
                                      "optimizer (Adam) has: use batch_size, "),
    ({"lr": (1e-1, 1e-4)}, "['lr'] = (0.1, 0.0001) is not a range"),
    ({"lr": (0, 1e-1)}, "above 0"),
    ({"batch_size": "big"}, "give (low, high), two numbers"),
])
def test_bad_hyperparameters_say_what_to_write(given: object, says: str) -> None:
    with pytest.raises(TargetError, match=re.escape(says)):
        hyperparameters.checked_ranges(given, "t.py", ADAM)


@settings(max_examples=50, deadline=None)
@given(low=st.floats(1e-6, 1.0), span=st.floats(1.0, 1e4), seed=st.integers(0, 2**31 - 1),
       size=st.tuples(st.integers(1, 64), st.integers(0, 64)))
def test_drawn_hyperparameters_stay_in_their_ranges(low: float, span: float, seed: int,
                                                    size: tuple[int, int]) -> None:
    ranges = hyperparameters.checked_ranges(
        {"lr": (low, low * span), "batch_size": (size[0], size[0] + size[1]),
         "weight_decay": (0, low)}, "t.py", ADAM)
    drawn = dict(hyperparameters.draw(ranges, torch.Generator().manual_seed(seed)))
    assert all(ranges[name][0] <= value <= ranges[name][1] * (1 + 1e-12)
               for name, value in drawn.items())
    assert drawn["batch_size"] == int(drawn["batch_size"])
