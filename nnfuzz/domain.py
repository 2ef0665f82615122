"""The valid input space of a target: one :class:`Field` per input tensor.

A model takes its inputs by position, ``model(*inputs)``, or by name,
``model(**inputs)`` when ``seeds()`` returns a mapping; inside nnfuzz they are
a tuple either way, in the seeds' order, and :attr:`Domain.names` says how to
call. Every tensor has a batch dimension first. Each field knows its
per-example shape, dtype, kind (continuous values, image levels, tokens,
flags, or a mask recomputed from tokens), bounds, and where each of those
came from, so that mutants stay valid, corpus files are checked before they
reach the model, and the user sees the domain that is searched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from nnfuzz.errors import CorpusError, TargetError
from nnfuzz.kinds import KINDS, Continuous, Flags, Image, Kind, Mask, Tokens

Inputs = tuple[torch.Tensor, ...]
#: The keyword names of the inputs, in order; None when the model takes them by position.
Names = tuple[str, ...] | None

CONTINUOUS, IMAGE, TOKENS, FLAGS, MASK = "continuous", "image", "tokens", "flags", "mask"
#: Where bounds came from when nothing declared them: the reason for a warning.
FROM_SEEDS = "the seeds' min and max"


@dataclass(frozen=True)
class Field:
    """One input tensor: per-example shape, dtype, kind and inclusive bounds."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    low: float
    high: float
    #: Token inputs only: the id that pads sequences at their end.
    pad: int | None = None
    #: continuous, image, tokens, flags or mask; by default from the dtype.
    kind: str = ""
    #: How messages name the input: its keyword, or its position.
    label: str = "0"
    #: Where the bounds came from (BOUNDS, a declaration, the model's config, the seeds).
    bounds_from: str = ""
    pad_from: str = ""
    #: Every seed is real tokens followed by padding: mutants are kept that way.
    right_padded: bool = False
    #: Masks only: the position of the token input the mask is computed from, and
    #: whether it is on for real tokens ("tokens") or for padding ("padding").
    follows: int | None = None
    marks: str = "tokens"

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", _kind_of_dtype(self.dtype))

    @property
    def is_integer(self) -> bool:
        return not (self.dtype.is_floating_point or self.dtype.is_complex)

    @property
    def mutable(self) -> bool:
        """Masks are recomputed from their tokens, never mutated themselves."""
        return self.kind != MASK

    @property
    def width(self) -> float:
        return self.high - self.low

    def clamp(self, values: torch.Tensor) -> torch.Tensor:
        """Values moved into the bounds (rounded first for image levels)."""
        if self.kind in (FLAGS, MASK):
            return values if values.dtype == torch.bool else values.clamp(0, 1)
        if self.kind == IMAGE:
            return values.round().clamp(self.low, self.high).to(self.dtype)
        if self.is_integer:
            return values.clamp(int(self.low), int(self.high))
        return values.clamp(self.low, self.high)

    def describe(self) -> str:
        """One line for the start of a run: what this input is and where that came from."""
        dtype = str(self.dtype).removeprefix("torch.")
        head = f"input {self.label}: {self.shape} {dtype}"
        if self.kind == CONTINUOUS:
            return f"{head}, continuous in [{self.low:g}, {self.high:g}] ({self.bounds_from})"
        if self.kind == IMAGE:
            return f"{head}, image levels {self.low:g}..{self.high:g}, rounded ({self.bounds_from})"
        if self.kind == FLAGS:
            return f"{head}, flags, mutated by flipping"
        if self.kind == MASK:
            on = "real tokens" if self.marks == "tokens" else "padding"
            return f"{head}, mask on {on}, recomputed after every mutation ({self.bounds_from})"
        pad = ""
        if self.pad is not None:
            where = "at the end, as every seed" if self.right_padded else "where it appears"
            pad = f"; pad {self.pad} ({self.pad_from}), {where}"
        return f"{head}, tokens {self.low:g}..{self.high:g} ({self.bounds_from}){pad}"


def _kind_of_dtype(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return FLAGS
    if dtype == torch.uint8:
        return IMAGE
    return CONTINUOUS if dtype.is_floating_point else TOKENS


@dataclass(frozen=True)
class Domain:
    """The fields of all input tensors, in the order the seeds give them."""

    fields: tuple[Field, ...]
    #: The inputs' keyword names; None when the model takes them by position.
    names: Names = None

    def check(self, inputs: Inputs, what: str) -> None:
        """Raise :class:`CorpusError` unless ``inputs`` fit this domain."""
        if len(inputs) != len(self.fields):
            raise CorpusError(
                f"{what} has {len(inputs)} input tensor(s), but the seeds have "
                f"{len(self.fields)}: give inputs of the same structure as seeds()."
            )
        for tensor, field in zip(inputs, self.fields):
            if tuple(tensor.shape[1:]) != field.shape or tensor.dtype != field.dtype:
                raise CorpusError(
                    f"{what}: input {field.label} has shape {tuple(tensor.shape[1:])} and "
                    f"dtype {tensor.dtype} per example, but the seeds have "
                    f"{field.shape} and {field.dtype}: give inputs shaped like the seeds."
                )

    def arrange(self, inputs: Inputs, names: Names, what: str) -> Inputs:
        """Inputs read from a file (named or by position) in this domain's order, checked."""
        if names is not None and self.names is None:
            raise CorpusError(f"{what} has named inputs ({', '.join(names)}) but the seeds are "
                              "positional: give inputs of the same structure as seeds().")
        if names is not None and self.names is not None:
            if sorted(names) != sorted(self.names):
                raise CorpusError(f"{what} has inputs {', '.join(names)} but the seeds have "
                                  f"{', '.join(self.names)}: give inputs named like seeds().")
            by_name = dict(zip(names, inputs))
            inputs = tuple(by_name[name] for name in self.names)
        self.check(inputs, what)
        return inputs

    def normalize(self, inputs: Inputs) -> Inputs:
        """Padded token sequences kept as real tokens then padding, and masks recomputed
        from their tokens: what every mutant, shrunk candidate and loaded file goes through."""
        inputs = tuple(_right_padded(t, f.pad) if f.kind == TOKENS and f.right_padded else t
                       for t, f in zip(inputs, self.fields))
        return tuple(derive_mask(inputs[f.follows], self.fields[f.follows].pad, f.marks, f.dtype)
                     if f.kind == MASK and f.follows is not None else t
                     for t, f in zip(inputs, self.fields))

    def describe(self) -> list[str]:
        return [field.describe() for field in self.fields]

    def warnings(self) -> list[str]:
        """What the user should fix in the target for the search to reach everywhere."""
        found = []
        for field in self.fields:
            if field.kind in (CONTINUOUS, IMAGE) and field.bounds_from == FROM_SEEDS:
                example = (f"BOUNDS = {{{field.label}: (low, high)}}" if self.names
                           else "BOUNDS = (low, high)")
                found.append(
                    f"input {field.label}: its bounds [{field.low:g}, {field.high:g}] are the seeds' "
                    "min and max, because the target sets no BOUNDS for it: values outside them "
                    "are never tried, so a bug there cannot be found; set the range the model "
                    f"must accept in the target, e.g. {example}.")
            if field.kind == MASK and field.follows is not None \
                    and self.fields[field.follows].pad is None:
                tokens = self.fields[field.follows].label
                found.append(
                    f"input {field.label} follows {tokens}, but no pad id is known: sequences "
                    f"are never shortened or padded; declare it, e.g. INPUTS = {{{tokens}: "
                    "nnfuzz.Tokens(pad=0)}.")
        return found


def derive_mask(tokens: torch.Tensor, pad: int | None, marks: str, dtype: torch.dtype) -> torch.Tensor:
    """The padding mask of ``tokens``: on for real tokens, or on for padding."""
    real = tokens != pad if pad is not None else torch.ones_like(tokens, dtype=torch.bool)
    return (real if marks == "tokens" else ~real).to(dtype)


def _right_padded(tokens: torch.Tensor, pad: int | None) -> torch.Tensor:
    """Each sequence's real tokens first, in order, then its padding (along the last dim)."""
    is_pad = (tokens == pad).to(torch.uint8)
    order = torch.sort(is_pad, dim=-1, stable=True).indices
    return tokens.gather(-1, order)


def _is_right_padded(tokens: torch.Tensor, pad: int) -> bool:
    """Whether, in every sequence, nothing but padding follows the first pad."""
    if tokens.dim() < 2:
        return False
    is_pad = (tokens == pad).to(torch.uint8)
    return bool(torch.equal(is_pad.cummax(-1).values, is_pad))


# --- calling the model ----------------------------------------------------------------------

def call(function: Callable[..., Any], inputs: Inputs, names: Names) -> Any:
    """``function(*inputs)``, or ``function(**inputs)`` by name for named inputs."""
    if names is None:
        return function(*inputs)
    return function(**dict(zip(names, inputs)))


def arguments(inputs: Inputs, names: Names) -> Inputs | dict[str, torch.Tensor]:
    """The inputs as the user's own functions see them: a tuple, or a dict by name."""
    return tuple(inputs) if names is None else dict(zip(names, inputs))


# --- the seeds ------------------------------------------------------------------------------

def as_named_inputs(value: object, what: str) -> tuple[Inputs, Names]:
    """A tensor, a tuple/list of tensors, or a mapping of name -> tensor, all sharing N."""
    names: Names = None
    if isinstance(value, Mapping):
        keys = list(value)
        bad = [k for k in keys if not isinstance(k, str) or not k.isidentifier()]
        if bad or not keys:
            raise TargetError(f"{what} returned a mapping with key {bad[0] if bad else None!r}: "
                              "a dict of inputs maps each keyword the model's forward() takes "
                              "to a Tensor (N, ...).")
        names, value = tuple(keys), tuple(value[k] for k in keys)
    tensors = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TargetError(
            f"{what} returned {type(value).__name__}: return a Tensor of shape (N, ...), "
            "a tuple of tensors sharing N, or a dict of them by keyword."
        )
    labels = names or [str(i) for i in range(len(tensors))]
    for label, tensor in zip(labels, tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TargetError(f"{what} returned a {type(tensor).__name__} as input {label}: "
                              "every input must be a torch.Tensor.")
        if tensor.dim() == 0:
            raise TargetError(f"{what} returned a 0-d tensor as input {label}: "
                              "give a batch dimension first, shape (N, ...).")
        if tensor.is_complex():
            raise TargetError(f"{what} input {label} has dtype {tensor.dtype}: "
                              "nnfuzz fuzzes float, integer and bool tensors.")
    sizes = {tensor.shape[0] for tensor in tensors}
    if len(sizes) != 1:
        raise TargetError(f"{what} returned tensors with different N {sorted(sizes)}: "
                          "all input tensors must share the batch dimension.")
    if 0 in sizes:
        raise TargetError(f"{what} returned no examples (N = 0): give at least one seed.")
    return tuple(tensor.detach().contiguous() for tensor in tensors), names


def as_inputs(value: object, what: str) -> Inputs:
    """The tensors of :func:`as_named_inputs`, without their names."""
    return as_named_inputs(value, what)[0]


# --- inferring the domain -------------------------------------------------------------------

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
    kind_name = _declared_kind(kind, dtype, label, origin) if kind is not None else _kind_of_dtype(dtype)
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
    pad, pad_from = None, ""
    if kind_name == TOKENS:
        pad, pad_from = _declared_or_config_pad(kind, config, name, low, high)
    return Field(shape, dtype, low, high, pad=pad, kind=kind_name, label=label,
                 bounds_from=source, pad_from=pad_from,
                 right_padded=pad is not None and _is_right_padded(tensor, pad))


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
    return replace(field, pad=pad, pad_from="most seeds end with it",
                   right_padded=_is_right_padded(tokens, pad))


# --- masks ----------------------------------------------------------------------------------

def _with_masks(fields: list[Field], seeds: Inputs, kinds: list[Kind | None], names: Names,
                origin: str) -> list[Field]:
    """Declared masks tied to their tokens; undeclared 0/1 inputs that are masks found."""
    fields = list(fields)
    for position, kind in enumerate(kinds):
        if isinstance(kind, Mask):
            follows = _position_of(kind.follows, names, len(seeds), origin, fields[position].label)
            tokens = _token_field_for(fields[follows], fields[position], origin)
            if tokens.pad is None and (pad := _pad_under(seeds[position], seeds[follows],
                                                         kind.marks)) is not None:
                tokens = replace(tokens, pad=pad, pad_from=f"the values under {fields[position].label}'s padding",
                                 right_padded=_is_right_padded(seeds[follows], pad))
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
                pad, source = _pad_under(mask, tokens, marks), f"the values under {fields[position].label}'s padding"
            hinted = names is not None and names[position] == "attention_mask" \
                and names[other] == "input_ids" and marks == "tokens"
            if pad is None and not (hinted and bool(mask.bool().all())):
                continue
            if torch.equal(derive_mask(tokens, pad, marks, mask.dtype), mask):
                relation = "!=" if marks == "tokens" else "=="
                how = (f"inferred: it equals {field.label} {relation} {pad} on every seed"
                       if pad is not None else f"inferred from its name; it is all on in every seed")
                tokens_field = replace(field, pad=pad, pad_from=source,
                                       right_padded=pad is not None and _is_right_padded(tokens, pad))
                return other, tokens_field, replace(fields[position], kind=MASK, follows=other,
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
