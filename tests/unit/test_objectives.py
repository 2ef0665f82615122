"""Objectives one by one on real executions (which rows fail, what the finding says), and
judge(): findings and pressure from one evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.objectives import (Disagree, LossObjective, Nonfinite, ObjectiveContext, judge,
                               rebuild, rebuild_key)
from nnfuzz.objectives import RaisedException, build_objectives
from nnfuzz.references import Reference

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
    with Executor(NanInSecondLayer().eval()) as executor:
        execution = executor.run((inputs,))
    findings = Nonfinite().judge(execution)
    assert sorted(f.example for f in findings) == [1, 3]
    for finding in findings:
        assert finding.objective == "nonfinite"
        assert "'second'" in finding.detail and "NaN" in finding.detail
        assert finding.signature == "nonfinite:second"


def test_the_first_nonfinite_module_is_named_in_forward_order_not_registration_order(
        executor_for: Callable[..., Executor]) -> None:
    class Reordered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Linear(2, 2)   # registered first, runs last
            self.early = SqrtLayer()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.late(self.early(x))

    execution = executor_for(Reordered().eval()).run((torch.tensor([[-1.0, 1.0], [1.0, 1.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [0]
    assert findings[0].signature == "nonfinite:early"


def test_inf_is_reported_as_inf(executor_for: Callable[..., Executor]) -> None:
    class Overflow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale(x.exp())

    execution = executor_for(Overflow().eval()).run((torch.tensor([[1.0], [1000.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]
    assert "Inf" in findings[0].detail and "NaN" not in findings[0].detail


def test_a_nan_made_outside_any_submodule_is_reported_in_the_models_output(
        executor_for: Callable[..., Executor]) -> None:
    class Divides(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.ReLU()

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.hidden(x)
            return {"hidden": h, "logits": h / h.sum(1, keepdim=True)}

    execution = executor_for(Divides().eval()).run((torch.tensor([[1.0, 1.0], [-1.0, -2.0]]),))
    findings = Nonfinite().judge(execution)
    assert [f.example for f in findings] == [1]
    assert "NaN" in findings[0].detail


def test_a_healthy_model_gives_no_finding(executor_for: Callable[..., Executor]) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    execution = executor_for(model).run((torch.rand(16, 3),))
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
    with Executor(RaisesOnPositive().eval()) as executor:
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


def test_rows_that_raised_are_not_also_reported_as_nonfinite(
        executor_for: Callable[..., Executor]) -> None:
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
    execution = executor_for(model).run((inputs,))
    findings = judge(build_objectives(None, ObjectiveContext(model=model)), execution).findings
    by_example = {f.example: f for f in findings}
    assert sorted(by_example) == [1, 2]
    assert by_example[1].objective == "nonfinite"
    assert by_example[2].objective == "exception"
    assert f"{HERE}:{line_of('raise-too-large')}" in by_example[2].detail


def test_a_model_that_raises_on_every_example_flags_every_row(
        executor_for: Callable[..., Executor]) -> None:
    execution = executor_for(RaisesOnPositive().eval()).run((torch.ones(3, 2),))
    assert execution.primary is None
    assert [f.example for f in RaisedException().judge(execution)] == [0, 1, 2]


def _compiled(path: Path, text: str) -> dict:
    path.write_text(text)
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)
    return namespace


def test_the_line_named_is_in_the_target_file_when_a_library_it_calls_raises(
        tmp_path: Path, executor_for: Callable[..., Executor]) -> None:
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
    executor = executor_for(CallsTarget().eval(), source=source)
    findings = RaisedException().judge(executor.run(inputs))
    assert [f.example for f in findings] == [1]
    assert "IndexError" in findings[0].detail
    assert "target_model.py:3" in findings[0].detail
    # Without a target file, the innermost user frame is named.
    findings = RaisedException().judge(executor_for(CallsTarget().eval()).run(inputs))
    assert "helper_library.py:3" in findings[0].detail



def test_judge_gives_each_guides_pressure_in_its_columns_nan_where_it_has_none(
        executor_for: Callable[..., Executor]) -> None:
    model = nn.Linear(3, 4).eval()
    loss = LossObjective(ObjectiveContext(model=model, loss=lambda out, _: out.sum(1)))
    execution = executor_for(model).run((torch.rand(5, 3),))
    judged = judge([Nonfinite(), loss], execution, guides=[loss])
    assert judged.findings == [] and judged.pressure.shape == (5, 1)
    with torch.no_grad():
        expected = -model(execution.inputs[0]).sum(1)
    assert torch.allclose(judged.pressure[:, 0], expected)
    none = judge([Nonfinite()], execution, guides=[])
    assert none.pressure.shape == (5, 0)


def test_a_disagreement_is_rebuilt_at_replay_from_the_metadata_it_wrote() -> None:
    model = nn.Linear(3, 4).eval()
    found = Disagree(ObjectiveContext(model=model, reference=Reference("fp16", model, "fp16"),
                                      atol=0.5, rtol=0.25))
    metadata = found.reproducer_metadata()
    assert metadata == {"reference": "fp16", "atol": "0.5", "rtol": "0.25"}
    rebuilt = rebuild("disagree", metadata, ObjectiveContext(model=model), "crash.safetensors")
    assert isinstance(rebuilt, Disagree) and rebuilt.reference.kind == "fp16"
    assert (rebuilt.atol, rebuilt.rtol) == (0.5, 0.25)
    assert rebuild_key("disagree", metadata) != rebuild_key("disagree", {**metadata, "atol": "1"})
    assert rebuild_key("nonfinite", metadata) == ("nonfinite",)


def test_disagree_runs_the_reference_once_per_batch_for_its_findings_and_pressure() -> None:
    """Findings and pressure come from one evaluation, against that batch's own reference
    output: nothing is cached from an earlier batch."""
    from nnfuzz.objectives import Disagree, ObjectiveContext
    from nnfuzz.references import Reference

    model = torch.nn.Linear(3, 4).eval()
    calls: list[int] = []

    def reference(inputs):  # type: ignore[no-untyped-def]
        calls.append(inputs[0].shape[0])
        return model(*inputs)

    objective = Disagree(ObjectiveContext(model=model, reference=Reference("copy", reference, "x")))
    with Executor(model) as executor:
        for size in (5, 1, 7):
            execution = executor.run((torch.rand(size, 3),))
            judged = objective.evaluate(execution)
            assert judged.findings == [] and judged.pressure.shape == (size, 2)
    assert calls == [5, 1, 7], "each batch's reference output is computed once, for that batch"


def test_a_step_down_the_steering_gradient_shrinks_the_top_two_margin() -> None:
    from nnfuzz.guidance import gradient
    from nnfuzz.objectives.disagree import top_two_margin

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    inputs = torch.rand(6, 5, generator=torch.Generator().manual_seed(1))
    with Executor(model) as executor:
        [direction] = gradient(executor, (inputs,), top_two_margin)
    stepped = inputs - 0.01 * direction.sign()
    with torch.no_grad():
        before, after = top_two_margin(model(inputs)), top_two_margin(model(stepped))
    assert bool((after < before).all()), (before, after)
