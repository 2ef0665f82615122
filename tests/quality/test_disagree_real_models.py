"""disagree on models as they are: seeds that already disagree, and per-token outputs whose
padding positions no one reads."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

import nnfuzz
from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.status import RecordingReporter
from nnfuzz.target import in_memory

VOCAB, LENGTH = 12, 6



class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class FlipsBrightInputs(nn.Module):
    """A second implementation that predicts another class wherever x[0] > 0.9."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).clone()
        bright = x[:, 0] > 0.9
        out[bright] = out[bright].roll(1, -1)  # every class score moved on by one
        return out


def test_seeds_that_already_disagree_are_dropped_with_a_warning_and_the_run_goes_on(
        in_process: Callable[..., InProcess]) -> None:
    seeds = 0.8 * torch.rand(16, 3, generator=torch.Generator().manual_seed(1))
    seeds[:3, 0] = 0.95  # three seeds the reference already disagrees on
    model = Classifier()
    said = RecordingReporter()
    fuzzer = in_process(in_memory(model, seeds, bounds=(0.0, 1.0),
                                 reference=lambda: FlipsBrightInputs(model)),
                       FuzzConfig(runs=3000, stop_on_failure=True), reporter=said)
    result = fuzzer.run()
    fuzzer.close()
    assert any("3 of 16 seeds already disagree with the reference" in w for w in said.warnings)
    assert fuzzer.engine.seed_count == 13
    assert result.failures and result.failures[0].objective == "disagree"


def test_when_every_seed_disagrees_the_target_is_refused() -> None:
    seeds = torch.full((4, 3), 0.95)
    model = Classifier()
    with pytest.raises(nnfuzz.TargetError, match="every seed already fails disagree") as refused:
        nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), reference=FlipsBrightInputs(model), runs=100)
    # Classes: tolerances play no part in an argmax, so the advice is about seeds and precision.
    assert "give seeds whose top two classes are apart" in str(refused.value)
    assert "--atol" not in str(refused.value)


class TinyLM(nn.Module):
    """Next-token logits (B, L, V) for ids and their attention mask (Hugging Face style)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return {"logits": self.head(self.embed(input_ids))}


class OtherKernel(nn.Module):
    """The same language model, but what it leaves at padding positions differs; and, when
    asked, it also mispredicts after token 7."""

    def __init__(self, model: nn.Module, wrong_after_seven: bool) -> None:
        super().__init__()
        self.model, self.wrong_after_seven = model, wrong_after_seven

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        logits = self.model(input_ids, attention_mask)["logits"].clone()
        moved = attention_mask == 0  # padding: another argmax
        if self.wrong_after_seven:
            moved |= (input_ids == 7) & (attention_mask == 1)
        logits[moved] = logits[moved].roll(1, -1)
        return {"logits": logits}


def lm_seeds() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (8, LENGTH), generator=generator)
    ids[ids == 7] = 8
    ids[:, 4:] = 0  # every seed is padded
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_a_language_model_is_compared_only_at_the_positions_the_mask_marks_real() -> None:
    model = TinyLM()
    clean = nnfuzz.fuzz(model, lm_seeds(), reference=OtherKernel(model, False), runs=3000,
                        objectives=["disagree"])
    assert not clean.failures, clean.failures[0].describe()
    found = nnfuzz.fuzz(model, lm_seeds(), reference=OtherKernel(model, True), runs=3000,
                        objectives=["disagree"], stop_on_failure=True)
    assert found.failures, "the disagreement at a real token was not found"
    failure = found.failures[0]
    ids, mask = failure.inputs
    position = int(failure.detail.split(";")[0].rsplit("at position ", 1)[1])
    assert ids[position] == 7 and mask[position] == 1
