"""The valid input space of a target: one :class:`Field` per input tensor.

A model takes its inputs by position, ``model(*inputs)``, or by name,
``model(**inputs)`` when ``seeds()`` returns a mapping; inside nnfuzz they are
a tuple either way, in the seeds' order, and :attr:`Domain.names` says how to
call. Every tensor has a batch dimension first. Each field knows its
per-example shape, dtype, kind (continuous values, image levels, tokens,
flags, or a mask recomputed from tokens), bounds, and where each of those
came from, so that mutants stay valid, corpus files are checked before they
reach the model, and the user sees the domain that is searched. How a domain
is read off the seeds and the target's declarations: nnfuzz.inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nnfuzz.errors import CorpusError, TargetError

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
            object.__setattr__(self, "kind", kind_of_dtype(self.dtype))

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


def kind_of_dtype(dtype: torch.dtype) -> str:
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

    def real_positions(self, inputs: Inputs) -> torch.Tensor | None:
        """Where the batch holds real tokens, (B, L) bool, by its first mask; None without one:
        per-position outputs (a language model's) are compared only there."""
        for tensor, field in zip(inputs, self.fields):
            if field.kind == MASK:
                on = tensor.bool().reshape(tensor.shape[0], -1)
                return on if field.marks == "tokens" else ~on
        return None

    def describe(self) -> list[str]:
        return [field.describe() for field in self.fields]

    def warnings(self, api: bool = False) -> list[str]:
        """What the user should fix in the target (``api``: in the call to nnfuzz.fuzz) for
        the search to reach everywhere."""
        found = []
        for field in self.fields:
            if field.kind in (CONTINUOUS, IMAGE) and field.bounds_from == FROM_SEEDS:
                ranges = f"{{{field.label}: (low, high)}}" if self.names else "(low, high)"
                unset, fix = (("no bounds= were given for it", f"pass the range the model must "
                               f"accept to nnfuzz.fuzz(), e.g. bounds={ranges}") if api else
                              ("the target sets no BOUNDS for it", "set the range the model must "
                               f"accept in the target, e.g. BOUNDS = {ranges}"))
                found.append(
                    f"input {field.label}: its bounds [{field.low:g}, {field.high:g}] are the seeds' "
                    f"min and max, because {unset}: values outside them are never tried, so a "
                    f"bug there cannot be found; {fix}.")
            if field.kind == TOKENS and field.bounds_from == FROM_SEEDS:
                vocab = f"{{{field.label}: nnfuzz.Tokens(vocab=N)}}" if self.names else "nnfuzz.Tokens(vocab=N)"
                unset, fix = (("no vocabulary was given for it", f"pass it to nnfuzz.fuzz(), e.g. "
                               f"inputs={vocab}") if api else
                              ("the target declares no vocabulary for it and no nn.Embedding "
                               "takes it as it is", f"declare it in the target, e.g. INPUTS = {vocab}"))
                found.append(
                    f"input {field.label}: its token ids {field.low:g}..{field.high:g} are the "
                    f"seeds' min and max, because {unset}: other ids are never tried, so a bug "
                    f"there cannot be found; {fix}.")
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


def is_right_padded(tokens: torch.Tensor, pad: int) -> bool:
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
