"""The domain: each input's kind and bounds, declared or inferred, and said where from."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nnfuzz
from nnfuzz.domain import FROM_SEEDS, as_named_inputs
from nnfuzz.inference import infer_domain
from nnfuzz.errors import CorpusError, TargetError
from nnfuzz.mutation import Mutator
from nnfuzz.target import in_memory


def padded(count: int = 6, length: int = 8, pad: int = 0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 50, (count, length), generator=generator)  # never a pad below 10
    lengths = torch.randint(2, length + 1, (count, 1), generator=generator)
    ids[torch.arange(length).view(1, -1) >= lengths] = pad
    return ids


def test_a_mapping_of_seeds_gives_names_in_order_and_tensors() -> None:
    ids = padded()
    inputs, names = as_named_inputs({"input_ids": ids, "attention_mask": ids != 0}, "seeds()")
    assert names == ("input_ids", "attention_mask")
    assert torch.equal(inputs[0], ids) and inputs[1].dtype == torch.bool


def test_kinds_are_inferred_from_dtypes() -> None:
    seeds = (torch.rand(4, 3), torch.randint(0, 256, (4, 2, 2), dtype=torch.uint8),
             torch.rand(4, 5) < 0.5, torch.randint(0, 9, (4, 3)))
    domain = infer_domain(seeds)
    assert [f.kind for f in domain.fields] == ["continuous", "image", "flags", "tokens"]
    image = domain.fields[1]
    assert (image.low, image.high, image.bounds_from) == (0.0, 255.0, "uint8's range")
    assert domain.fields[0].bounds_from == FROM_SEEDS


def test_only_inferred_continuous_bounds_are_warned_about_and_the_warning_says_how_to_fix() -> None:
    inferred = infer_domain((torch.rand(4, 3),))
    [warning] = inferred.warnings()
    assert "seeds' min and max" in warning and "BOUNDS = (low, high)" in warning
    assert infer_domain((torch.rand(4, 3),), (0.0, 1.0)).warnings() == []
    named = infer_domain((torch.rand(4, 3),), names=("audio",))
    assert "BOUNDS = {'audio': (low, high)}" in named.warnings()[0]


def test_a_mask_equal_to_tokens_not_pad_is_a_derived_mask_and_names_the_pad_under_it() -> None:
    ids = padded(pad=7)
    domain = infer_domain((ids, (ids != 7).long()), names=("input_ids", "attention_mask"))
    tokens, mask = domain.fields
    assert mask.kind == "mask" and mask.follows == 0 and mask.marks == "tokens"
    assert tokens.pad == 7 and tokens.right_padded
    assert "'attention_mask'" in tokens.pad_from
    assert "equals 'input_ids' != 7 on every seed" in mask.describe()


def test_a_bool_mask_true_on_padding_is_a_padding_mask() -> None:
    ids = padded()
    domain = infer_domain((ids, ids == 0))
    assert domain.fields[1].kind == "mask" and domain.fields[1].marks == "padding"


def test_the_vocabulary_and_pad_come_from_a_hugging_face_style_config() -> None:
    class Config:
        vocab_size, pad_token_id, type_vocab_size = 120, 1, 2

    class Model(torch.nn.Module):
        config = Config()

    ids = padded(pad=1)
    domain = infer_domain((ids, (ids != 1).long(), torch.zeros_like(ids)), model=Model(),
                          names=("input_ids", "attention_mask", "token_type_ids"))
    tokens, mask, segments = domain.fields
    assert (tokens.low, tokens.high, tokens.bounds_from) == (0, 119, "model.config.vocab_size")
    assert (tokens.pad, tokens.pad_from) == (1, "model.config.pad_token_id")
    assert mask.kind == "mask"
    assert (segments.high, segments.pad) == (1, None), "segment ids are not padding"


def test_declared_kinds_and_bounds_by_name_win_over_inference() -> None:
    ids = padded()
    domain = infer_domain(
        (ids, torch.ones_like(ids), torch.rand(6, 4)), names=("ids", "mask", "x"),
        bounds={"x": (-1.0, 2.0)},
        declared={"ids": nnfuzz.Tokens(vocab=60, pad=0), "mask": nnfuzz.Flags()})
    ids_field, mask_field, x_field = domain.fields
    assert (ids_field.high, ids_field.pad, ids_field.bounds_from) == (59, 0, "INPUTS: Tokens(vocab=60, pad=0)")
    assert mask_field.kind == "flags"
    assert (x_field.low, x_field.high, x_field.bounds_from) == (-1.0, 2.0, "BOUNDS")


def test_a_declared_mask_is_recomputed_and_must_match_its_seeds() -> None:
    ids = padded()
    declared = {"mask": nnfuzz.Mask(follows="ids")}
    domain = infer_domain((ids, (ids != 0).long()), names=("ids", "mask"), declared=declared)
    assert domain.fields[1].follows == 0
    wrong = (ids != 0).long()
    wrong[0, 0] = 0
    with pytest.raises(TargetError, match="seed 0's input 'mask' is not the mask of its 'ids'"):
        infer_domain((ids, wrong), names=("ids", "mask"), declared=declared)


@pytest.mark.parametrize("bounds, declared, message", [
    ({"nope": (0, 1)}, None, "BOUNDS names input 'nope'"),
    (None, {"x": nnfuzz.Mask(follows="z")}, "no such input"),
    (None, {"y": nnfuzz.Mask(follows="x")}, "which is continuous, not tokens"),
    (None, {"x": nnfuzz.Tokens()}, r"declared Tokens\(.*\) but its seeds are torch.float32"),
    (None, {"x": 3}, "does not give nnfuzz.Continuous()"),
    ({"x": (0.0, 1.0)}, {"x": nnfuzz.Continuous(0, 1)}, "both in INPUTS and in BOUNDS"),
])
def test_a_declaration_that_does_not_fit_is_a_target_error_that_says_what_to_do(
        bounds: object, declared: object, message: str) -> None:
    seeds = (torch.rand(4, 3), torch.randint(0, 5, (4, 3)))
    with pytest.raises(TargetError, match=message):
        infer_domain(seeds, bounds, names=("x", "y"), declared=declared)


def test_named_inputs_from_a_file_are_arranged_in_the_seeds_order_or_refused() -> None:
    ids = padded()
    domain = infer_domain((ids, ids != 0), names=("ids", "mask"))
    arranged = domain.arrange((ids != 0, ids), ("mask", "ids"), "file")
    assert torch.equal(arranged[0], ids)
    with pytest.raises(CorpusError, match="named like seeds"):
        domain.arrange((ids, ids != 0), ("ids", "other"), "file")
    with pytest.raises(CorpusError, match="seeds are positional"):
        infer_domain((ids,)).arrange((ids,), ("ids",), "file")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), pad=st.integers(0, 3), marks=st.sampled_from(["tokens", "padding"]),
       mask_dtype=st.sampled_from([torch.bool, torch.int64]))
def test_chains_of_mutants_keep_every_kind_valid(seed: int, pad: int, marks: str,
                                                 mask_dtype: torch.dtype) -> None:
    """Masks stay their tokens' masks, padding stays at the end, images stay integer levels
    in bounds, flags stay bool: after every mutation of a chain."""
    ids = padded(pad=pad, seed=seed % 1000)
    real = ids != pad
    mask = (real if marks == "tokens" else ~real).to(mask_dtype)
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(20, 200, (6, 3, 3), generator=generator, dtype=torch.uint8)
    flags = torch.rand(6, 4, generator=generator) < 0.5
    seeds = (ids, mask, image, flags)
    domain = infer_domain(seeds, [(0, 60), None, None, None])
    assert [f.kind for f in domain.fields] == ["tokens", "mask", "image", "flags"]
    mutator = Mutator(domain)
    current = seeds
    for _ in range(8):
        current = mutator.mutate(current, seeds, generator)
        tokens, got_mask, got_image, got_flags = current
        expected = (tokens != pad) if marks == "tokens" else (tokens == pad)
        assert torch.equal(got_mask, expected.to(mask_dtype))
        is_pad = tokens == pad
        assert torch.equal(is_pad, is_pad.cummax(-1).values), "padding left the end"
        assert int(tokens.min()) >= 0 and int(tokens.max()) <= 60
        assert got_image.dtype == torch.uint8 and got_flags.dtype == torch.bool
        assert tuple(t.shape for t in current) == tuple(t.shape for t in seeds)


class EmbeddingBag(torch.nn.Module):
    """Token ids straight into an nn.Embedding(500), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(500, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).mean(1))


class OneHot(torch.nn.Module):
    """Token ids one-hot encoded by hand: no embedding takes them as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(500, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.one_hot(ids, 500).float().mean(1))


def token_seeds() -> torch.Tensor:
    return torch.randint(3, 497, (16, 12), generator=torch.Generator().manual_seed(0))


def test_token_bounds_come_from_the_embedding_the_ids_feed_with_no_warning() -> None:
    domain = in_memory(EmbeddingBag(), token_seeds()).domain()
    [field] = domain.fields
    assert (field.low, field.high) == (0.0, 499.0)
    assert "embedding.num_embeddings" in field.bounds_from
    assert domain.warnings() == []


def test_token_bounds_from_the_seeds_are_a_warning_saying_how_to_declare_the_vocabulary() -> None:
    seeds = token_seeds()
    domain = in_memory(OneHot(), seeds).domain()
    [field] = domain.fields
    assert (field.low, field.high) == (float(seeds.min()), float(seeds.max()))
    [warning] = domain.warnings()
    assert f"token ids {int(seeds.min())}..{int(seeds.max())} are the seeds' min and max" in warning
    assert "INPUTS = nnfuzz.Tokens(vocab=N)" in warning
    [api_warning] = domain.warnings(api=True)
    assert "inputs=nnfuzz.Tokens(vocab=N)" in api_warning
