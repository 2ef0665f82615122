"""A Hugging Face model, as a user has it, fuzzed with no wrapper: tokenizer-style named
inputs, the vocabulary and pad read from its config, the mask recomputed from the ids.

Models are built from a tiny config with random weights: nothing is downloaded.
transformers is an optional test dependency: pip install -e '.[models]'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import nnfuzz
from nnfuzz.replay import Verdict, replay
from nnfuzz.storage import read_input_file
from nnfuzz.target import in_memory

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed: pip install -e '.[models]'")

PAD = 0


def tiny_config(**overrides: object) -> "transformers.BertConfig":
    return transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=32, pad_token_id=PAD, **overrides)


def tokenizer_output(count: int = 8, length: int = 16) -> dict[str, torch.Tensor]:
    """What a tokenizer gives with padding=True: ids padded at the end, their mask, segments."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (count, length), generator=generator)
    lengths = torch.randint(4, length + 1, (count, 1), generator=generator)
    ids[torch.arange(length).view(1, -1) >= lengths] = PAD
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "token_type_ids": torch.zeros_like(ids)}


def bert_classifier() -> nn.Module:
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(tiny_config(num_labels=3))


class MaskedMeanPoolBert(nn.Module):
    """A user's sentence encoder: BERT, then mean pooling over the mask with no guard
    against an empty one: 0/0 when every position is padding."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.bert = transformers.BertModel(tiny_config())
        self.head = nn.Linear(32, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state  # (B, L, 32)
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((hidden * mask).sum(1) / mask.sum(1))


def test_the_domain_of_a_bert_model_comes_from_its_config_and_its_tokenizer_output() -> None:
    domain = in_memory(bert_classifier(), tokenizer_output()).domain()
    ids, mask, segments = domain.fields
    assert (ids.kind, ids.high, ids.bounds_from) == ("tokens", 99, "model.config.vocab_size")
    assert (ids.pad, ids.pad_from, ids.right_padded) == (PAD, "model.config.pad_token_id", True)
    assert (mask.kind, mask.follows) == ("mask", 0)
    assert (segments.kind, segments.high) == ("tokens", 1)
    assert domain.warnings() == []


def test_a_bert_classifier_without_a_bug_fuzzes_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = nnfuzz.fuzz(bert_classifier(), tokenizer_output(), out=out, runs=3000, seed=0)
    assert not result.failures, result.failures[0].describe()
    assert result.corpus > 8, "the corpus should grow"
    for path in (out / "corpus").glob("*.safetensors"):
        inputs, _ = read_input_file(path)
        ids, mask = inputs[0], inputs[1]
        assert torch.equal(mask, (ids != PAD).long())


def test_the_masked_pooling_0_by_0_of_a_bert_encoder_is_found_and_replays(tmp_path: Path) -> None:
    seeds = tokenizer_output()
    result = nnfuzz.fuzz(MaskedMeanPoolBert(), seeds, out=tmp_path / "out", runs=3000,
                         stop_on_failure=True, seed=0)
    assert result.failures, "no all-padding input was tried"
    failure = result.failures[0]
    assert failure.objective == "nonfinite" and "head" in failure.detail
    assert (failure.inputs[0] == PAD).all() and (failure.inputs[1] == 0).all()
    outcome = replay(in_memory(MaskedMeanPoolBert(), seeds), [failure.path])[0]
    assert outcome.verdict is Verdict.STILL_FAILS, outcome.line()


class MaskedMeanPoolDistilBert(nn.Module):
    """A DistilBERT encoder (built from a config) with the user's mean pooling over the mask:
    0 / 0 on an all-padding row. transformers builds -inf for the attention mask on purpose;
    the encoder's output stays finite."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        config = transformers.DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2,
                                               hidden_dim=64, max_position_embeddings=32,
                                               pad_token_id=PAD)
        self.encoder = transformers.DistilBertModel(config).eval()
        self.head = nn.Linear(32, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((hidden * mask).sum(1) / mask.sum(1))  # the user's pooling


@pytest.mark.parametrize("model", [MaskedMeanPoolBert, MaskedMeanPoolDistilBert])
def test_the_nan_is_blamed_on_the_users_pooling_not_on_the_attention_masks_minus_inf(
        model: type[nn.Module]) -> None:
    from nnfuzz.attribution import first_nonfinite_operation

    ids = torch.full((1, 16), PAD)
    mask = torch.zeros(1, 16, dtype=torch.long)
    inputs, names = ((ids, mask, mask), ("input_ids", "attention_mask", "token_type_ids"))
    if model is MaskedMeanPoolDistilBert:
        inputs, names = inputs[:2], names[:2]
    origin = first_nonfinite_operation(model().eval(), inputs, names, Path(__file__))
    assert origin is not None
    assert (origin.operation, origin.kind) == ("torch.div", "NaN"), origin
    assert "/ mask.sum(1)" in origin.location
