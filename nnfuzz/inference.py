"""Reading a target's domain off its seeds and its declarations (BOUNDS, INPUTS).

Declarations win; what they leave open is inferred from each seed tensor's
dtype and values, and from a Hugging Face model's config where it has one.
Every field records where its kind, bounds and pad came from, so that the
run can say so (nnfuzz.domain.Field.describe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from nnfuzz.domain import (CONTINUOUS, FLAGS, FROM_SEEDS, IMAGE, MASK, TOKENS, Domain, Field,
                           Inputs, Names, call, kind_of_dtype, derive_mask, is_right_padded)
from nnfuzz.errors import TargetError
from nnfuzz.kinds import KINDS, Continuous, Flags, Image, Kind, Mask, Tokens


def infer_domain(seeds: Inputs, bounds: object = None, origin: str = "the target", *,
                 names: Names = None, declared: object = None,
                 model: torch.nn.Module | None = None) -> Domain:
    """The domain of the seeds: each input's kind and bounds, declared or inferred.

    Declarations win: ``INPUTS`` (``declared``) gives kinds, ``BOUNDS`` bounds.
    What is left is inferred: float tensors are continuous, uint8 image levels
    (0..255), bool flags, other integers tokens, their vocabulary and pad read
    from a Hugging Face model's config where it has one. An integer or bool
    input that equals ``tokens != pad`` (or ``== pad``) on every seed is a mask
    of those tokens. ``origin`` (the target file's name) starts every error.
    """
    labels = [repr(n) for n in names] if names else [str(i) for i in range(len(seeds))]
    kinds = _per_input(declared, "INPUTS", names, len(seeds), origin, _is_kind)
    pairs = _per_input(bounds, "BOUNDS", names, len(seeds), origin, _is_pair, single=_is_pair)
    fields = []
    for tensor, kind, pair, label, name in zip(seeds, kinds, pairs, labels,
                                               names or [None] * len(seeds)):
        _check_seed_values(tensor, label, origin)
        fields.append(_field(tensor, kind, pair, label, name, model, origin))
    fields = _with_embedding_vocabularies(fields, seeds, model, names)
    fields = _with_masks(fields, seeds, kinds, names, origin)
    masked = {f.follows for f in fields if f.kind == MASK}
    fields = [_with_trailing_pad(f, t) if f.kind == TOKENS and f.pad is None and i not in masked
              else f for i, (f, t) in enumerate(zip(fields, seeds))]
    domain = Domain(tuple(fields), names)
    _check_seeds_fit(domain, seeds, origin)
    return domain


def _field(tensor: torch.Tensor, kind: Kind | None, pair: tuple[float, float] | None,
           label: str, name: str | None, model: torch.nn.Module | None, origin: str) -> Field:
    """A field from its declaration, its BOUNDS and its dtype (masks come later)."""
    shape, dtype = tuple(tensor.shape[1:]), tensor.dtype
    kind_name = _declared_kind(kind, dtype, label, origin) if kind is not None else kind_of_dtype(dtype)
    if kind_name in (FLAGS, MASK):
        return Field(shape, dtype, 0.0, 1.0, kind=kind_name, label=label, bounds_from="declared")
    declared_pair = _declared_bounds(kind)
    if declared_pair is not None and pair is not None:
        raise TargetError(f"{origin}: input {label} has bounds both in INPUTS and in BOUNDS: "
                          "give them once.")
    config = getattr(model, "config", None)
    if pair is not None:
        low, high, source = *pair, "BOUNDS"
    elif declared_pair is not None:
        low, high, source = *declared_pair, f"INPUTS: {kind!r}"
    elif kind_name == TOKENS and (size := _config_vocab(config, name)) is not None:
        low, high, source = 0, size[0] - 1, f"model.config.{size[1]}"
    elif kind_name == IMAGE and dtype == torch.uint8:
        low, high, source = 0, 255, "uint8's range"
    else:
        low, high, source = tensor.min().item(), tensor.max().item(), FROM_SEEDS
    low, high = float(low), float(high)
    if not low <= high:
        raise TargetError(f"{origin}: {source.split(':')[0]} gives input {label} the bounds "
                          f"({low}, {high}): low must not exceed high.")
    field = Field(shape, dtype, low, high, kind=kind_name, label=label, bounds_from=source)
    if kind_name == TOKENS:
        field = _with_pad(field, tensor, *_declared_or_config_pad(kind, config, name, low, high))
    return field


def _declared_kind(kind: Kind, dtype: torch.dtype, label: str, origin: str) -> str:
    if isinstance(kind, Mask):
        return MASK
    if isinstance(kind, Flags):
        return FLAGS
    if isinstance(kind, Continuous) or (isinstance(kind, Image) and dtype.is_floating_point):
        if not dtype.is_floating_point:
            raise TargetError(f"{origin}: input {label} is declared {kind!r} but its seeds are "
                              f"{dtype}: declare nnfuzz.Image() for integer levels, or give float seeds.")
        return CONTINUOUS
    if dtype.is_floating_point or dtype == torch.bool:
        raise TargetError(f"{origin}: input {label} is declared {kind!r} but its seeds are "
                          f"{dtype}: give integer seeds, or declare another kind.")
    return IMAGE if isinstance(kind, Image) else TOKENS


def _declared_bounds(kind: Kind | None) -> tuple[float, float] | None:
    if isinstance(kind, (Continuous, Image)) and (kind.low is not None or kind.high is not None):
        if kind.low is None or kind.high is None:
            return None
        return float(kind.low), float(kind.high)
    if isinstance(kind, Tokens) and kind.vocab is not None:
        return 0.0, float(kind.vocab - 1)
    return None


def _with_embedding_vocabularies(fields: list[Field], seeds: Inputs,
                                 model: torch.nn.Module | None, names: Names) -> list[Field]:
    """Token inputs whose bounds would come from the seeds, where the model feeds them
    straight into an ``nn.Embedding``: ids 0 to its ``num_embeddings`` - 1 instead (the
    first embedding in call order that takes the input as it is)."""
    unsure = [i for i, f in enumerate(fields) if f.kind == TOKENS and f.bounds_from == FROM_SEEDS]
    if model is None or not unsure:
        return fields
    found = _embedding_vocabularies(model, seeds, names, unsure)
    for position, (size, name) in found.items():
        field = fields[position]
        if field.low >= 0 and field.high <= size - 1:
            fields[position] = replace(field, low=0.0, high=float(size - 1),
                                       bounds_from=f"{name}.num_embeddings, the nn.Embedding it feeds")
    return fields


def _embedding_vocabularies(model: torch.nn.Module, seeds: Inputs, names: Names,
                            positions: list[int]) -> dict[int, tuple[int, str]]:
    """For each input at ``positions`` that an nn.Embedding takes as it is: that embedding's
    num_embeddings and name. The model runs once on the seeds, with a pre-hook on its
    embeddings alone; a model that raises there is left to the seed check to report."""
    embeddings = {m: n or "(model)" for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Embedding)}
    found: dict[int, tuple[int, str]] = {}

    def look(module: torch.nn.Module, args: tuple[object, ...]) -> None:
        taken = args[0] if args else None
        for position in positions:
            seed = seeds[position]
            if position not in found and isinstance(taken, torch.Tensor) \
                    and taken.shape == seed.shape and bool((taken == seed.to(taken.device)).all()):
                found[position] = (module.num_embeddings, embeddings[module])  # type: ignore[arg-type]

    handles = [module.register_forward_pre_hook(look) for module in embeddings]
    try:
        if handles:
            with torch.no_grad():
                call(model, seeds, names)
    except Exception:  # noqa: BLE001 - the seed check says what is wrong with the model
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found


#: The config attribute that holds the vocabulary of a Hugging Face input.
CONFIG_VOCABULARY = {"input_ids": "vocab_size", "decoder_input_ids": "vocab_size",
                     "token_type_ids": "type_vocab_size"}


def _config_vocab(config: object, name: str | None) -> tuple[int, str] | None:
    attribute = CONFIG_VOCABULARY.get(name or "")
    size = getattr(config, attribute, None) if attribute else None
    return (size, attribute) if isinstance(size, int) and size > 0 else None  # type: ignore[return-value]


def _declared_or_config_pad(kind: Kind | None, config: object, name: str | None,
                            low: float, high: float) -> tuple[int | None, str]:
    if isinstance(kind, Tokens) and kind.pad is not None:
        return kind.pad, "INPUTS"
    pad = getattr(config, "pad_token_id", None)
    if name in ("input_ids", "decoder_input_ids") and isinstance(pad, int) and low <= pad <= high:
        return pad, "model.config.pad_token_id"
    return None, ""


#: A value counts as padding when at least this share of the seeds end in it.
PAD_SHARE = 0.5


def _with_trailing_pad(field: Field, tokens: torch.Tensor) -> Field:
    """A token field's pad, when nothing declared one: the value most seeds end with."""
    if tokens.dim() < 2 or tokens.shape[-1] < 2:
        return field
    last = tokens[..., -1].flatten()
    values, counts = torch.unique(last, return_counts=True)
    best = int(counts.argmax())
    if counts[best].item() < PAD_SHARE * last.numel():
        return field
    pad = int(values[best].item())
    if not bool((tokens != pad).any()):  # one value throughout (segment ids): no padding
        return field
    return _with_pad(field, tokens, pad, "most seeds end with it")


def _with_pad(field: Field, tokens: torch.Tensor, pad: int | None, source: str) -> Field:
    """A token field padded with ``pad`` (None: not padded), and whether at the end."""
    return replace(field, pad=pad, pad_from=source if pad is not None else "",
                   right_padded=pad is not None and is_right_padded(tokens, pad))


def _under(mask: Field) -> str:
    return f"the values under {mask.label}'s padding"


# --- masks ----------------------------------------------------------------------------------

def _with_masks(fields: list[Field], seeds: Inputs, kinds: list[Kind | None], names: Names,
                origin: str) -> list[Field]:
    """Declared masks tied to their tokens; undeclared 0/1 inputs that are masks found."""
    fields = list(fields)
    for position, kind in enumerate(kinds):
        if isinstance(kind, Mask):
            follows = _position_of(kind.follows, names, len(seeds), origin, fields[position].label)
            tokens = _token_field_for(fields[follows], fields[position], origin)
            if tokens.pad is None:
                tokens = _with_pad(tokens, seeds[follows],
                                   _pad_under(seeds[position], seeds[follows], kind.marks),
                                   _under(fields[position]))
            fields[follows] = tokens
            fields[position] = replace(fields[position], follows=follows, marks=kind.marks,
                                       bounds_from=f"INPUTS: follows {fields[follows].label}")
        elif kind is None and _looks_like_mask(seeds[position]):
            found = _mask_relation(position, fields, seeds, names)
            if found is not None:
                fields[found[0]], fields[position] = found[1], found[2]
    return fields


def _looks_like_mask(tensor: torch.Tensor) -> bool:
    if tensor.dtype == torch.bool:
        return True
    if tensor.dtype.is_floating_point or tensor.dtype == torch.uint8:
        return False
    return bool(((tensor == 0) | (tensor == 1)).all())


def _mask_relation(position: int, fields: list[Field], seeds: Inputs,
                   names: Names) -> tuple[int, Field, Field] | None:
    """The token input this one is the mask of, if any: (its position, its field with the
    pad now known, this field as a mask)."""
    mask = seeds[position]
    for other, field in enumerate(fields):
        if other == position or field.kind != TOKENS or field.shape != fields[position].shape:
            continue
        tokens = seeds[other]
        for marks in ("tokens", "padding"):
            pad, source = field.pad, field.pad_from
            if pad is None:
                pad, source = _pad_under(mask, tokens, marks), _under(fields[position])
            hinted = names is not None and names[position] == "attention_mask" \
                and names[other] == "input_ids" and marks == "tokens"
            if pad is None and not (hinted and bool(mask.bool().all())):
                continue
            if torch.equal(derive_mask(tokens, pad, marks, mask.dtype), mask):
                relation = "!=" if marks == "tokens" else "=="
                how = (f"inferred: it equals {field.label} {relation} {pad} on every seed"
                       if pad is not None else "inferred from its name; it is all on in every seed")
                return other, _with_pad(field, tokens, pad, source), replace(fields[position], kind=MASK, follows=other,
                                                    marks=marks, low=0.0, high=1.0, bounds_from=how)
    return None


def _pad_under(mask: torch.Tensor, tokens: torch.Tensor, marks: str) -> int | None:
    """The one token value found wherever the mask says padding, if there is one."""
    padding = ~mask.bool() if marks == "tokens" else mask.bool()
    values = torch.unique(tokens[padding])
    return int(values[0]) if len(values) == 1 else None


def _token_field_for(tokens: Field, mask: Field, origin: str) -> Field:
    if tokens.kind != TOKENS:
        raise TargetError(f"{origin}: input {mask.label} is declared a Mask following input "
                          f"{tokens.label}, which is {tokens.kind}, not tokens: make it follow "
                          "the token ids it masks.")
    if tokens.shape != mask.shape:
        raise TargetError(f"{origin}: input {mask.label} has shape {mask.shape} but the tokens it "
                          f"follows ({tokens.label}) have {tokens.shape}: a mask has one value "
                          "per token.")
    return tokens


def _position_of(key: str | int, names: Names, count: int, origin: str, label: str) -> int:
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < count:
        return key
    if names is not None and key in names:
        return names.index(key)  # type: ignore[arg-type]
    raise TargetError(f"{origin}: input {label} is declared Mask(follows={key!r}), but there is "
                      f"no such input: name one of {', '.join(names or map(str, range(count)))}.")


# --- reading the target's declarations ---------------------------------------------------

def _per_input(value: object, what: str, names: Names, count: int, origin: str,
               fits: Callable[[object], bool], single: Callable[[object], bool] | None = None
               ) -> list[Any]:
    """One entry per input from BOUNDS or INPUTS: a mapping by name, a list by position,
    or one value for every input (one kind only for a single input)."""
    if value is None:
        return [None] * count
    if isinstance(value, Mapping):
        unknown = [key for key in value if names is None or key not in names]
        if unknown:
            choose = f"name one of {', '.join(names)}" if names else "give a list by position"
            raise TargetError(f"{origin}: {what} names input {unknown[0]!r}, which the seeds do "
                              f"not have: {choose}.")
        entries = [value.get(name) for name in names]  # type: ignore[union-attr]
    elif (single or fits)(value) and (single is not None or count == 1):
        entries = [value] * count
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == count:
        entries = list(value)
    else:
        entries = [object()]
    for entry in entries:
        if entry is not None and not fits(entry):
            example = ("a (low, high) pair" if what == "BOUNDS"
                       else "nnfuzz.Continuous(), Tokens(), Image(), Flags() or Mask()")
            raise TargetError(
                f"{origin}: {what} = {value!r} does not give {example} per input: give one for "
                f"every input, a list of {count} by position, or a dict by name.")
    return entries


def _is_pair(value: object) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _is_kind(value: object) -> bool:
    return isinstance(value, KINDS)


def _check_seed_values(tensor: torch.Tensor, label: str, origin: str) -> None:
    if tensor.dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
        raise TargetError(f"{origin}: seeds() input {label} holds NaN or Inf: seeds must be "
                          "finite, valid inputs; fix or drop those seeds.")


def _check_seeds_fit(domain: Domain, seeds: Inputs, origin: str) -> None:
    """The seeds are valid inputs: inside the bounds, their masks those of their tokens."""
    for tensor, field in zip(seeds, domain.fields):
        if field.kind in (FLAGS, MASK):
            continue
        seed_low, seed_high = tensor.min().item(), tensor.max().item()
        if seed_low < field.low or seed_high > field.high:
            raise TargetError(
                f"{origin}: seeds input {field.label} spans [{seed_low:g}, {seed_high:g}], outside "
                f"its bounds ({field.low}, {field.high}) from {field.bounds_from}: the seeds must "
                "be valid inputs; widen the bounds or fix the seeds.")
    for position, (tensor, field) in enumerate(zip(domain.normalize(seeds), domain.fields)):
        if field.kind == MASK and not torch.equal(tensor, seeds[position]):
            row = int((tensor != seeds[position]).reshape(tensor.shape[0], -1).any(1).nonzero()[0])
            tokens = domain.fields[field.follows]  # type: ignore[index]
            raise TargetError(
                f"{origin}: seed {row}'s input {field.label} is not the mask of its {tokens.label} "
                f"(pad {tokens.pad}, on for {field.marks}): give seeds whose mask matches their "
                "tokens, or declare the right pad in INPUTS.")
