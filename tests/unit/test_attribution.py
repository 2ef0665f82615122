"""Where a NaN was made: the module named with what it may hide, and the operation found
on the reproducer alone."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import nnfuzz
from nnfuzz.attribution import first_nonfinite_operation
from tests.unit.test_instrumentation import EncoderClassifier


class NormalisedInForward(nn.Module):
    """The NaN is made by functional code in forward(), before the first module that shows it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(x)
        h = h / h.std(1, keepdim=True)  # made here
        return self.head(h)


def made_here() -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.endswith("# made here"))


def test_the_operation_and_line_that_made_a_nan_in_forward_are_found() -> None:
    model = NormalisedInForward().eval()
    with torch.no_grad():
        model.project.weight.zero_()
        model.project.bias.zero_()  # a constant hidden layer: std 0, 0 / 0
    origin = first_nonfinite_operation(model, (torch.rand(1, 4),), None, Path(__file__))
    assert origin is not None
    assert (origin.operation, origin.kind) == ("torch.div", "NaN")
    assert origin.location.startswith(f"test_attribution.py:{made_here()} ")


def test_a_fused_kernel_that_makes_the_nan_is_named_even_with_minus_inf_masks_going_in() -> None:
    origin = first_nonfinite_operation(EncoderClassifier(norm_first=True).eval(),
                                       (torch.zeros(1, 8, dtype=torch.long),), None, None)
    assert origin is not None and origin.operation == "aten._transformer_encoder_layer_fwd"


def test_a_finite_model_has_no_origin() -> None:
    assert first_nonfinite_operation(NormalisedInForward().eval(), (torch.rand(2, 4),), None) is None


def test_a_run_reports_the_module_what_it_may_hide_and_the_operation(tmp_path: Path) -> None:
    model = NormalisedInForward()
    with torch.no_grad():
        model.project.weight.mul_(1e-3)  # nearly constant: the edges reach std 0
        model.project.bias.zero_()
    result = nnfuzz.fuzz(model, torch.rand(16, 4) + 0.5, bounds=(0.0, 2.0), runs=2000,
                         stop_on_failure=True, out=tmp_path / "out")
    assert result.failures
    detail = result.failures[0].detail
    assert "NaN in the output of module 'head'" in detail
    assert "it may come from code that runs before it in the forward() of the model" in detail
    assert f"made by torch.div at test_attribution.py:{made_here()}" in detail


class MaskedAttentionThenPooling(nn.Module):
    """Attention whose padding is masked with -inf on purpose (softmax makes it 0: harmless;
    the first position is never masked), then a mean over the mask that divides by its sum:
    0 / 0 for an all-padding row. The NaN that reaches the output is the pooling's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.score = nn.Linear(4, 1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.clone()
        keep[:, 0] = True
        scores = self.score(x).squeeze(-1).masked_fill(~keep, float("-inf"))
        attended = x * torch.softmax(scores, 1).unsqueeze(-1)
        weights = mask.unsqueeze(-1).float()
        pooled = (attended * weights).sum(1) / weights.sum(1)  # pooled here
        return self.head(pooled)


def test_a_deliberate_minus_inf_that_softmax_consumes_is_not_blamed_for_the_nan() -> None:
    x, mask = torch.rand(1, 6, 4), torch.zeros(1, 6, dtype=torch.bool)  # all padding
    origin = first_nonfinite_operation(MaskedAttentionThenPooling().eval(), (x, mask), None,
                                       Path(__file__))
    assert origin is not None
    assert (origin.operation, origin.kind) == ("torch.div", "NaN")
    line = next(n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1)
                if text.endswith("# pooled here"))
    assert origin.location.startswith(f"test_attribution.py:{line} ")


def test_an_inf_that_reaches_the_output_is_traced_to_the_operation_that_made_it() -> None:
    class Overflows(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mask = torch.zeros_like(x).masked_fill(x < 0, float("-inf"))  # consumed below
            kept = torch.softmax(x + mask, 1)
            return kept * torch.exp(x * 100)  # overflows here

    origin = first_nonfinite_operation(Overflows(), (torch.tensor([[1.0, -1.0, 2.0]]),), None,
                                       Path(__file__))
    assert origin is not None and (origin.operation, origin.kind) == ("torch.exp", "Inf")
