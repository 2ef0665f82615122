"""Execution and objectives: which rows fail, and what the report says about them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.objectives import Nonfinite, ObjectiveContext, RaisedException, build_objectives, judge

HERE = Path(__file__).name


def line_of(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    lines = Path(__file__).read_text().splitlines()
    found = [number for number, text in enumerate(lines, 1)
             if text.rstrip().endswith(f"# {marker}")]
    assert len(found) == 1, marker
    return found[0]


class SqrtLayer(nn.Module):
    """NaN for negative inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x)


class NanInSecondLayer(nn.Module):
    """first: identity; second: sqrt (NaN where x < 0); third: a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 2)
        self.second = SqrtLayer()
        self.third = nn.Linear(2, 3)
        with torch.no_grad():
            self.first.weight.copy_(torch.eye(2))
            self.first.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.third(self.second(self.first(x)))


def test_nonfinite_flags_exactly_the_rows_whose_second_layer_makes_nan() -> None:
    inputs = torch.tensor([[1.0, 2.0], [-1.0, 2.0], [3.0, 4.0], [0.5, -0.1], [0.0, 0.0]])
    executor = Executor(NanInSecondLayer().eval())
    execution = executor.run((inputs,))
    findings = Nonfinite().judge(execution)
    assert sorted(f.example for f in findings) == [1, 3]
    for finding in findings:
        assert finding.objective == "nonfinite"
        assert "'second'" in finding.detail and "NaN" in finding.detail
        assert finding.signature == "nonfinite:second"
    executor.close()


def test_the_first_nonfinite_module_is_named_in_forward_order_not_registration_order() -> None:
    class Reordered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Linear(2, 2)   # registered first, runs last
            self.early = SqrtLayer()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.late(self.early(x))

    execution = Executor(Reordered().eval()).run((torch.tensor([[-1.0, 1.0], [1.0, 1.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [0]
    assert findings[0].signature == "nonfinite:early"


def test_inf_is_reported_as_inf() -> None:
    class Overflow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale(x.exp())

    execution = Executor(Overflow().eval()).run((torch.tensor([[1.0], [1000.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]
    assert "Inf" in findings[0].detail and "NaN" not in findings[0].detail


def test_a_nan_made_outside_any_submodule_is_reported_in_the_models_output() -> None:
    class Divides(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.ReLU()

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.hidden(x)
            return {"hidden": h, "logits": h / h.sum(1, keepdim=True)}

    execution = Executor(Divides().eval()).run((torch.tensor([[1.0, 1.0], [-1.0, -2.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]
    assert "NaN" in findings[0].detail


def test_a_healthy_model_gives_no_finding() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    execution = Executor(model).run((torch.rand(16, 3),))
    assert judge(build_objectives(None, ObjectiveContext(model=model)), execution).findings == []
    assert bool(execution.ran.all())


class RaisesOnPositive(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] > 0).any()):
            raise ValueError("first coordinate must not be positive")  # raise-here
        return self.linear(x)


def test_only_the_examples_that_raise_are_flagged_with_the_type_and_the_line() -> None:
    inputs = torch.tensor([[-1.0, 0.0], [2.0, 0.0], [-3.0, 1.0], [0.5, 0.5]])
    executor = Executor(RaisesOnPositive().eval())
    execution = executor.run((inputs,))
    assert execution.ran.tolist() == [True, False, True, False]
    findings = RaisedException().judge(execution)
    assert [f.example for f in findings] == [1, 3]
    location = f"{HERE}:{line_of('raise-here')}"
    for finding in findings:
        assert finding.objective == "exception"
        assert "ValueError" in finding.detail
        assert location in finding.detail
        assert finding.signature == f"exception:ValueError:{location}"
    # The rows that ran have their real outputs.
    with torch.no_grad():
        assert torch.allclose(execution.primary[[0, 2]], executor.model.linear(inputs[[0, 2]]))


def test_rows_that_raised_are_not_also_reported_as_nonfinite() -> None:
    class RaisesOrNan(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.root = SqrtLayer()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x > 100).any()):
                raise RuntimeError("too large")  # raise-too-large
            return self.root(x)

    inputs = torch.tensor([[1.0], [-1.0], [200.0], [4.0]])
    model = RaisesOrNan().eval()
    execution = Executor(model).run((inputs,))
    findings = judge(build_objectives(None, ObjectiveContext(model=model)), execution).findings
    by_example = {f.example: f for f in findings}
    assert sorted(by_example) == [1, 2]
    assert by_example[1].objective == "nonfinite"
    assert by_example[2].objective == "exception"
    assert f"{HERE}:{line_of('raise-too-large')}" in by_example[2].detail


def test_a_model_that_raises_on_every_example_flags_every_row() -> None:
    execution = Executor(RaisesOnPositive().eval()).run((torch.ones(3, 2),))
    assert execution.primary is None
    assert [f.example for f in RaisedException().judge(execution)] == [0, 1, 2]


def _compiled(path: Path, text: str) -> dict:
    path.write_text(text)
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)
    return namespace


def test_the_line_named_is_in_the_target_file_when_a_library_it_calls_raises(
        tmp_path: Path) -> None:
    library = _compiled(tmp_path / "helper_library.py",
                        "def check(x):\n"
                        "    if bool((x < 0).any()):\n"
                        "        raise IndexError('negative index')\n"
                        "    return x\n")
    source = tmp_path / "target_model.py"
    target = _compiled(source, "def forward(check, x):\n"
                               "    y = x + 1\n"
                               "    return check(x) * 2\n")

    class CallsTarget(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return target["forward"](library["check"], x)

    inputs = (torch.tensor([[1.0], [-1.0]]),)
    findings = RaisedException().judge(Executor(CallsTarget().eval(), source=source).run(inputs))
    assert [f.example for f in findings] == [1]
    assert "IndexError" in findings[0].detail
    assert "target_model.py:3" in findings[0].detail
    # Without a target file, the innermost user frame is named.
    findings = RaisedException().judge(Executor(CallsTarget().eval()).run(inputs))
    assert "helper_library.py:3" in findings[0].detail


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
