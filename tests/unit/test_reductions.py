"""Each module output's reductions: computed once per tensor, and the same as reducing every
output on its own (containers, views, ReLUs in place or not, tensors written in place)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.reading import batch_rows
from nnfuzz.reductions import reduce


class WritesInPlace(nn.Module):
    """A ReLU whose input was written in place after the Linear made it: its largest value
    cannot come from the Linear's."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(10, 6)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear(x)
        hidden.mul_(-3.0)
        return self.relu(hidden) + 1


def cnn(inplace: bool) -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=inplace), nn.MaxPool2d(2)),
        nn.Flatten(), nn.Linear(4 * 5 * 5, 10), nn.Dropout(0.5), nn.ReLU(inplace=inplace),
        WritesInPlace())


def reference_events(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Every module output reduced on its own, as the module made it."""
    seen: list[tuple[str, torch.Tensor]] = []
    names = {module: name or "(model)" for name, module in model.named_modules()}

    def keep(module: nn.Module, _args: object, output: torch.Tensor) -> None:
        rows = batch_rows(output, x.shape[0])
        if rows is not None and rows.shape[1] > 0:
            seen.append((names[module], torch.stack(reduce(rows.detach().float().clone()))))

    handle = nn.modules.module.register_module_forward_hook(keep)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("inplace", [False, True])
def test_every_output_s_reductions_are_those_of_the_output_alone(inplace: bool) -> None:
    torch.manual_seed(0)
    model = cnn(inplace).eval()
    x = torch.randn(7, 1, 12, 12)
    expected = reference_events(model, x)
    with Executor(model) as executor:
        _, seen = executor._forward((x,))
        events = seen.reduced.events
    assert [executor.module_names[index] for index, _, _ in events] == [n for n, _ in expected]
    for (index, _, got), (name, reduced) in zip(events, expected):
        # the sums and norms to float rounding (the reference reduces a copy); the largest
        # and smallest values exactly (a ReLU's are its input's, clamped at 0)
        assert torch.allclose(torch.stack(got)[:2], reduced[:2], rtol=1e-6, atol=1e-6), name
        assert torch.equal(torch.stack(got)[2:], reduced[2:]), name


def test_a_container_s_output_is_reduced_once() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 5)), nn.Flatten()).eval()
    with Executor(model) as executor:
        _, seen = executor._forward((torch.randn(4, 3),))
    events = seen.reduced.events
    assert len(events) == 4  # the Linear, its Sequential, the Flatten, the model
    assert all(reduced is events[0][2] for _, _, reduced in events)


def test_each_event_s_largest_magnitude_is_that_of_the_output_alone() -> None:
    torch.manual_seed(1)
    model = cnn(True).eval()
    x = torch.randn(5, 1, 12, 12) * 4
    expected = reference_events(model, x)
    with Executor(model) as executor:
        execution = executor.run((x,))
    absmax = torch.stack([torch.maximum(r[2].abs(), r[3].abs()) for _, r in expected], 1)
    assert torch.equal(execution.event_absmax, absmax)
