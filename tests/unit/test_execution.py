"""The executor: primary outputs, coverage layers, no autograd."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.objectives import Nonfinite

class TupleOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 3)
        self.aux = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(x), torch.log(self.aux(x))


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(2, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(x)
        return {"hidden_states": features, "logits": self.head(features)}


def test_the_primary_output_of_a_tuple_is_its_first_tensor(
        executor_for: Callable[..., Executor]) -> None:
    torch.manual_seed(0)
    model = TupleOutput().eval()
    inputs = torch.rand(4, 2)
    execution = executor_for(model).run((inputs,))
    with torch.no_grad():
        expected = model.head(inputs)
    assert execution.primary.shape == (4, 3)
    assert torch.allclose(execution.primary, expected)
    assert torch.allclose(execution.coverage, expected)


def test_every_tensor_of_a_tuple_output_is_checked_for_nonfinite_values(
        executor_for: Callable[..., Executor]) -> None:
    model = TupleOutput().eval()
    with torch.no_grad():
        model.aux.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.aux.bias.zero_()
    execution = executor_for(model).run((torch.tensor([[1.0, 0.0], [-1.0, 0.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]


def test_the_primary_output_of_a_mapping_is_its_logits(
        executor_for: Callable[..., Executor]) -> None:
    torch.manual_seed(0)
    model = DictOutput().eval()
    inputs = torch.rand(6, 2)
    execution = executor_for(model).run((inputs,))
    with torch.no_grad():
        expected = model.head(model.features(inputs))
    assert execution.primary.shape == (6, 3)
    assert torch.allclose(execution.primary, expected)
    assert torch.allclose(execution.coverage, expected)
    assert len(execution.outputs) == 2


def test_layers_named_for_coverage_give_their_activations_as_the_coverage_vector(
        executor_for: Callable[..., Executor]) -> None:
    torch.manual_seed(0)
    model = DictOutput().eval()
    inputs = torch.rand(6, 2)
    execution = executor_for(model, layers=["features"]).run((inputs,))
    with torch.no_grad():
        assert torch.allclose(execution.coverage, model.features(inputs))


def test_an_unknown_layer_is_a_usage_error() -> None:
    from nnfuzz import UsageError
    with pytest.raises(UsageError, match="nosuchlayer"):
        Executor(DictOutput(), layers=["nosuchlayer"])


def test_the_model_runs_without_autograd(executor_for: Callable[..., Executor]) -> None:
    class Records(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.grad_enabled: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.grad_enabled.append(torch.is_grad_enabled())
            return self.linear(x)

    model = Records().eval()
    executor_for(model).run((torch.rand(3, 2),))
    assert model.grad_enabled == [False]


class SharedActivation(nn.Module):
    """One ReLU run twice (as torchvision's BasicBlock does), and a module that never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.second = nn.Linear(4, 6)
        self.relu = nn.ReLU()
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.second(self.relu(self.first(x))))


def _expected(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = rows.flatten(1).double()
    return rows.mean(1), rows.std(1, correction=0), rows.abs().amax(1)


def test_each_module_s_statistics_are_the_mean_spread_and_largest_magnitude_of_its_output(
        executor_for: Callable[..., Executor]) -> None:
    torch.manual_seed(0)
    model = SharedActivation().eval()
    x = torch.randn(5, 3) * 3
    executor = executor_for(model)
    execution = executor.run((x,))
    names = executor.module_names
    with torch.no_grad():
        first = model.first(x)
        second = model.second(torch.relu(first))
    for module, rows in (("first", first), ("second", second)):
        mean, std, absmax = _expected(rows)
        got = execution.stats[:, names.index(module)].double()
        assert torch.allclose(got[:, 0], mean, atol=1e-5)
        assert torch.allclose(got[:, 1], std, atol=1e-4)
        assert torch.equal(got[:, 2], absmax)
    # The shared ReLU: mean and spread of its first output, the largest magnitude of both.
    relu = execution.stats[:, names.index("relu")].double()
    mean, std, _ = _expected(torch.relu(first))
    assert torch.allclose(relu[:, 0], mean, atol=1e-5) and torch.allclose(relu[:, 1], std, atol=1e-4)
    both = torch.maximum(_expected(torch.relu(first))[2], _expected(torch.relu(second))[2])
    assert torch.equal(relu[:, 2], both)
    assert torch.isnan(execution.stats[:, names.index("unused")]).all()
    assert execution.event_modules == ["first", "relu", "second", "relu", "(model)"]


def test_a_non_finite_value_reaches_the_largest_magnitude_of_its_module_and_every_later_one(
        executor_for: Callable[..., Executor]) -> None:
    model = SharedActivation().eval()
    x = torch.zeros(3, 3)
    x[1, 0] = float("inf")
    execution = executor_for(model).run((x,))
    assert torch.isfinite(execution.event_absmax[[0, 2]]).all()
    assert not torch.isfinite(execution.event_absmax[1]).any()
