"""The executor: primary outputs, coverage layers, no autograd."""

from __future__ import annotations

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


def test_the_primary_output_of_a_tuple_is_its_first_tensor() -> None:
    torch.manual_seed(0)
    model = TupleOutput().eval()
    inputs = torch.rand(4, 2)
    execution = Executor(model).run((inputs,))
    with torch.no_grad():
        expected = model.head(inputs)
    assert execution.primary.shape == (4, 3)
    assert torch.allclose(execution.primary, expected)
    assert torch.allclose(execution.coverage, expected)


def test_every_tensor_of_a_tuple_output_is_checked_for_nonfinite_values() -> None:
    model = TupleOutput().eval()
    with torch.no_grad():
        model.aux.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.aux.bias.zero_()
    execution = Executor(model).run((torch.tensor([[1.0, 0.0], [-1.0, 0.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]


def test_the_primary_output_of_a_mapping_is_its_logits() -> None:
    torch.manual_seed(0)
    model = DictOutput().eval()
    inputs = torch.rand(6, 2)
    execution = Executor(model).run((inputs,))
    with torch.no_grad():
        expected = model.head(model.features(inputs))
    assert execution.primary.shape == (6, 3)
    assert torch.allclose(execution.primary, expected)
    assert torch.allclose(execution.coverage, expected)
    assert len(execution.outputs) == 2


def test_layers_named_for_coverage_give_their_activations_as_the_coverage_vector() -> None:
    torch.manual_seed(0)
    model = DictOutput().eval()
    inputs = torch.rand(6, 2)
    execution = Executor(model, layers=["features"]).run((inputs,))
    with torch.no_grad():
        assert torch.allclose(execution.coverage, model.features(inputs))


def test_an_unknown_layer_is_a_usage_error() -> None:
    from nnfuzz import UsageError
    with pytest.raises(UsageError, match="nosuchlayer"):
        Executor(DictOutput(), layers=["nosuchlayer"])


def test_the_model_runs_without_autograd() -> None:
    class Records(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.grad_enabled: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.grad_enabled.append(torch.is_grad_enabled())
            return self.linear(x)

    model = Records().eval()
    Executor(model).run((torch.rand(3, 2),))
    assert model.grad_enabled == [False]
