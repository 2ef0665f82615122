"""Planted bugs in models that take what real models take: named inputs with a padding
mask, bool masks and flags, uint8 images, a silent clip, a dict output fed to the loss.

Each test fuzzes with an output folder, as ``nnfuzz run`` does, and checks what
was found and what was saved: every corpus and crash input keeps the structure
of its domain (a mask that is its tokens' mask, uint8 stays uint8).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import nnfuzz
from nnfuzz.replay import Verdict, replay
from nnfuzz.storage import read_input_file
from nnfuzz.target import in_memory

PAD = 0
VOCAB = 40


def padded_tokens(count: int, length: int, seed: int) -> torch.Tensor:
    """Token ids 1..VOCAB-1, padded at the end with PAD to random lengths of at least 3."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (count, length), generator=generator)
    lengths = torch.randint(3, length + 1, (count, 1), generator=generator)
    ids[torch.arange(length).view(1, -1) >= lengths] = PAD
    return ids


def saved_inputs(folder: Path) -> list[dict[str, torch.Tensor]]:
    """Every input saved in a folder, by name (positional inputs by their index)."""
    found = []
    for path in sorted(folder.glob("*.safetensors")):
        inputs, metadata = read_input_file(path)
        names = eval(metadata["input_names"]) if "input_names" in metadata else range(len(inputs))
        found.append(dict(zip(map(str, names), inputs)))
    return found


# --- named inputs with a mask derived from the tokens ------------------------------------

class MaskedMeanPool(nn.Module):
    """Hugging Face's calling convention; mean pooling divides by the mask's sum: 0/0 on
    a sequence of padding only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()  # (B, L, 1)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)  # (B, 8)
        return self.head(pooled)


def test_named_inputs_with_a_derived_mask_find_the_all_padding_nan_and_never_break_the_mask(
        tmp_path: Path) -> None:
    ids = padded_tokens(16, 10, seed=1)
    seeds = {"input_ids": ids, "attention_mask": (ids != PAD).long()}
    out = tmp_path / "out"
    result = nnfuzz.fuzz(MaskedMeanPool(), seeds, out=out, runs=3000, seed=0)
    assert result.failures, "the all-padding 0/0 was not found"
    failure = result.failures[0]
    assert failure.names == ("input_ids", "attention_mask")
    assert (failure.inputs[0] == PAD).all() and (failure.inputs[1] == 0).all()
    saved = saved_inputs(out / "corpus") + saved_inputs(out / "crashes")
    assert len(saved) > 20, "the corpus should have grown"
    for inputs in saved:
        assert set(inputs) == {"input_ids", "attention_mask"}
        assert torch.equal(inputs["attention_mask"], (inputs["input_ids"] != PAD).long())
        real = inputs["attention_mask"].bool()
        assert torch.equal(real, real.cummin(-1).values), "padding must stay at the end"
    lengths = {int(inputs["attention_mask"].sum()) for inputs in saved}
    assert {0, 1, 10} <= lengths, f"the edges of the length were not reached: {sorted(lengths)}"
    target = in_memory(MaskedMeanPool(), seeds)
    assert replay(target, [failure.path])[0].verdict is Verdict.STILL_FAILS


# --- bool inputs ------------------------------------------------------------------------

class PaddingMaskedAttentionPool(nn.Module):
    """``nn.Transformer``'s convention: a bool mask True on padding, filled with -inf before a
    softmax: NaN when a sequence is padding only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(VOCAB, 8)
        self.score = nn.Linear(8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, L, 8)
        weights = self.score(x).squeeze(-1).masked_fill(padding, float("-inf")).softmax(-1)
        return self.head((weights.unsqueeze(-1) * x).sum(1))


def test_a_bool_padding_mask_follows_its_tokens_and_the_all_padding_nan_is_found(
        tmp_path: Path) -> None:
    tokens = padded_tokens(16, 8, seed=2)
    padding = tokens == PAD
    target = in_memory(PaddingMaskedAttentionPool(), (tokens, padding))
    domain = target.domain()
    assert domain.fields[1].kind == "mask" and domain.fields[1].marks == "padding"
    out = tmp_path / "out"
    result = nnfuzz.fuzz(PaddingMaskedAttentionPool(), (tokens, padding), out=out, runs=3000)
    assert result.failures and result.failures[0].objective == "nonfinite"
    for inputs in saved_inputs(out / "corpus") + saved_inputs(out / "crashes"):
        assert inputs["1"].dtype == torch.bool
        assert torch.equal(inputs["1"], inputs["0"] == PAD)


class FlagGated(nn.Module):
    """Averages the features a bool flag vector selects: 0/0 when no flag is on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
        chosen = (x * flags).sum(1, keepdim=True) / flags.sum(1, keepdim=True)  # (B, 1)
        return self.head(x * chosen)


def test_bool_flags_are_flipped_and_all_flags_off_is_found() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(16, 6, generator=generator)
    flags = torch.rand(16, 6, generator=generator) < 0.7
    flags[:, 0] = True  # every seed has a flag on
    domain = in_memory(FlagGated(), (x, flags), bounds=[(0.0, 1.0), None]).domain()
    assert domain.fields[1].kind == "flags"
    result = nnfuzz.fuzz(FlagGated(), (x, flags), bounds=[(0.0, 1.0), None], runs=3000,
                         stop_on_failure=True)
    assert result.failures, "no flag vector with every flag off was tried"
    assert result.failures[0].inputs[1].dtype == torch.bool
    assert not result.failures[0].inputs[1].any()


# --- uint8 images -----------------------------------------------------------------------

class Uint8Classifier(nn.Module):
    """What torchvision.io gives: uint8 pixels, scaled inside the model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.scaled(image)).flatten(1))

    def scaled(self, image: torch.Tensor) -> torch.Tensor:
        return image.float() / 255  # (B, 1, 8, 8)


class Uint8HeadroomNormalized(Uint8Classifier):
    """A contrast normalisation that divides by the brightest pixel's distance from 255:
    Inf on a saturated pixel."""

    def scaled(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float() / 255
        return x / (1.0 - x.amax((1, 2, 3), keepdim=True))


def uint8_seeds() -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    return torch.randint(30, 200, (16, 1, 8, 8), generator=generator, dtype=torch.uint8)


def test_uint8_images_are_fuzzed_as_levels_whose_corpus_reaches_0_and_255(tmp_path: Path) -> None:
    seeds = uint8_seeds()  # 30..199
    field = in_memory(Uint8Classifier(), seeds).domain().fields[0]
    assert (field.kind, field.low, field.high) == ("image", 0.0, 255.0)
    out = tmp_path / "out"
    result = nnfuzz.fuzz(Uint8Classifier(), seeds, out=out, runs=3000, seed=0)
    assert not result.failures
    corpus = [inputs["0"] for inputs in saved_inputs(out / "corpus")]
    assert all(image.dtype == torch.uint8 for image in corpus)
    values = torch.stack(corpus)
    assert int(values.min()) == 0 and int(values.max()) == 255, "the corpus must reach both ends"
    assert len(torch.unique(values)) > 200, "levels in between must be tried too, not only the ends"


def test_a_uint8_model_that_breaks_on_a_saturated_pixel_is_found() -> None:
    result = nnfuzz.fuzz(Uint8HeadroomNormalized(), uint8_seeds(), runs=3000, seed=0,
                         stop_on_failure=True)
    assert result.failures and result.failures[0].objective == "nonfinite"
    assert result.failures[0].inputs[0].dtype == torch.uint8
    assert int(result.failures[0].inputs[0].max()) == 255


# --- edges: a silent clip ---------------------------------------------------------------

class PeakNormalized(nn.Module):
    """Audio normalised by its peak before a 1-d convolution: 0/0 on silence."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv1d(1, 4, 5, stride=4)
        self.head = nn.Linear(4 * 15, 2)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        clip = clip / clip.abs().amax(-1, keepdim=True)  # (B, 1, 64)
        return self.head(torch.relu(self.conv(clip)).flatten(1))


def test_the_edge_operator_finds_the_0_by_0_of_a_silent_clip_that_nothing_else_reaches() -> None:
    generator = torch.Generator().manual_seed(5)
    clips = 0.5 * torch.randn(16, 1, 64, generator=generator).clamp(-1.9, 1.9)
    common = dict(bounds=(-1.0, 1.0), runs=3000, stop_on_failure=True, seed=0)
    with_edges = nnfuzz.fuzz(PeakNormalized(), clips.clamp(-1, 1), **common)
    assert with_edges.failures, "the all-zero clip was not tried"
    assert (with_edges.failures[0].inputs[0] == 0).all()
    without = nnfuzz.fuzz(PeakNormalized(), clips.clamp(-1, 1), edges=False, **common)
    assert not without.failures, "noise and shifts reached exact silence: the edge is not needed"


# --- the loss gets what the model returned ----------------------------------------------

class DictOutput(nn.Module):
    """A Hugging Face-style output: a dict with logits and hidden states."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.hidden = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.head.weight.mul_(200)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.tanh(self.hidden(x))
        return {"logits": self.head(hidden), "hidden_states": hidden}


def naive_cross_entropy(output: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """-log(softmax), reduced to a scalar: Inf once the true class's probability underflows."""
    probabilities = output["logits"].softmax(-1)
    return -probabilities[torch.arange(len(target)), target].log().mean()


def test_the_loss_indexes_the_dict_the_model_returned_and_its_overflow_is_found() -> None:
    seeds = 0.1 * torch.rand(16, 4, generator=torch.Generator().manual_seed(6))
    labels = torch.arange(16) % 3
    result = nnfuzz.fuzz(DictOutput(), seeds, bounds=(-3.0, 3.0), targets=labels,
                         loss=naive_cross_entropy, runs=5000, stop_on_failure=True)
    assert result.failures, "the underflowing probability was not reached"
    failure = result.failures[0]
    assert failure.objective == "loss" and "Inf" in failure.detail


def test_user_objectives_get_named_inputs_as_a_dict_and_the_dict_output() -> None:
    seen: list[tuple[object, object]] = []

    def long_sequence(inputs: dict[str, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        seen.append((sorted(inputs), type(output)))
        return inputs["attention_mask"].sum(1) >= 10

    ids = padded_tokens(8, 10, seed=7)
    ids[:, -1] = PAD  # every seed is shorter than 10
    result = nnfuzz.fuzz(MaskedMeanPool(), {"input_ids": ids, "attention_mask": (ids != PAD).long()},
                         objectives=[long_sequence], runs=2000, stop_on_failure=True)
    assert seen and seen[0] == (["attention_mask", "input_ids"], torch.Tensor)
    assert result.failures and int(result.failures[0].inputs[1].sum()) == 10


class SiameseAngle(nn.Module):
    """The angle between two embeddings, acos of their cosine similarity: NaN when the two
    inputs are equal and the similarity rounds past 1 in float32 (pytorch/pytorch#78064)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))

    def forward(self, anchor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        similarity = nn.functional.cosine_similarity(self.embed(anchor), self.embed(other))
        return torch.acos(similarity).unsqueeze(1)


def test_a_pair_made_equal_by_the_copy_operator_finds_the_acos_of_a_rounded_similarity() -> None:
    g = torch.Generator().manual_seed(0)
    pairs = (2 * torch.rand(32, 16, generator=g) - 1, 2 * torch.rand(32, 16, generator=g) - 1)
    for seed in range(3):
        result = nnfuzz.fuzz(SiameseAngle(), pairs, bounds=(-1.0, 1.0), runs=500, seed=seed,
                             minimize=False)
        [failure] = result.failures
        assert failure.objective == "nonfinite"
        assert int(failure.metadata["found_after_execs"]) <= 200  # the first batches
        anchor, other = failure.inputs
        assert torch.equal(anchor, other)
