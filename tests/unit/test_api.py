"""nnfuzz.fuzz as a test calls it (issue #24, item 8): the first failure ends it, and what it
says names its own arguments."""

from __future__ import annotations

import torch
from torch import nn

import nnfuzz
from nnfuzz.config import StopReason
from nnfuzz.status import RecordingReporter


class NanBelow(nn.Module):
    """NaN for inputs whose first value is below 0.2; the seeds are above 0.5."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, :1] < 0.2, self.linear(x) * float("nan"), self.linear(x))


def seeds() -> torch.Tensor:
    return 0.5 + 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))


def test_fuzz_stops_at_the_first_failure_unless_told_otherwise() -> None:
    first = nnfuzz.fuzz(NanBelow(), seeds(), bounds=(0.0, 1.0), runs=5_000, minimize=False)
    assert first.stop_reason is StopReason.FAILURE and len(first.failures) == 1
    assert first.execs < 5_000
    whole = nnfuzz.fuzz(NanBelow(), seeds(), bounds=(0.0, 1.0), runs=5_000, minimize=False,
                        stop_on_failure=False)
    assert whole.stop_reason is StopReason.RUNS and whole.execs == 5_000
    assert whole.failures and sum(whole.hits.values()) > 1


def test_bounds_taken_from_the_seeds_are_a_warning_naming_the_bounds_argument() -> None:
    said = RecordingReporter()
    nnfuzz.fuzz(nn.Linear(4, 2), seeds(), runs=100, reporter=said)
    [warning] = said.warnings
    assert "no bounds= were given" in warning
    assert "pass the range the model must accept to nnfuzz.fuzz(), e.g. bounds=(low, high)" in warning
    assert "BOUNDS" not in warning
