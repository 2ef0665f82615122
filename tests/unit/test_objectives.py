"""Objectives one by one, and judge(): findings and pressure from one evaluation."""

from __future__ import annotations

import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.objectives import (Disagree, LossObjective, Nonfinite, ObjectiveContext, judge,
                               rebuild, rebuild_key)
from nnfuzz.references import Reference


def test_judge_gives_each_guides_pressure_in_its_columns_nan_where_it_has_none() -> None:
    model = nn.Linear(3, 4).eval()
    loss = LossObjective(ObjectiveContext(model=model, loss=lambda out, _: out.sum(1)))
    execution = Executor(model).run((torch.rand(5, 3),))
    verdicts = judge([Nonfinite(), loss], execution, guides=[loss])
    assert verdicts.findings == [] and verdicts.pressure.shape == (5, 1)
    with torch.no_grad():
        expected = -model(execution.inputs[0]).sum(1)
    assert torch.allclose(verdicts.pressure[:, 0], expected)
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
    executor = Executor(model)
    for size in (5, 1, 7):
        execution = executor.run((torch.rand(size, 3),))
        judged = objective.evaluate(execution)
        assert judged.findings == [] and judged.pressure.shape == (size, 2)
    assert calls == [5, 1, 7], "each batch's reference output is computed once, for that batch"


def test_a_step_down_the_steering_gradient_shrinks_the_top_two_margin() -> None:
    from nnfuzz.objectives.disagree import top_two_margin

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    inputs = torch.rand(6, 5, generator=torch.Generator().manual_seed(1))
    executor = Executor(model)
    [direction] = executor.gradient((inputs,), top_two_margin)
    stepped = inputs - 0.01 * direction.sign()
    with torch.no_grad():
        before, after = top_two_margin(model(inputs)), top_two_margin(model(stepped))
    assert bool((after < before).all()), (before, after)
