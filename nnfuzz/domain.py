"""The valid input space of a target: one :class:`Field` per input tensor.

A model is called as ``model(*inputs)``; every input tensor has a batch
dimension first. The domain knows each tensor's per-example shape, dtype and
bounds, so that mutants can be kept valid and corpus files checked before
they reach the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from nnfuzz.errors import CorpusError, TargetError

Inputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Field:
    """One input tensor: per-example shape, dtype and inclusive bounds."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    low: float
    high: float
    #: Integer inputs only: the value the seeds pad sequences with at their
    #: end, so that deleting a token pads the way the seeds do.
    pad: int | None = None

    @property
    def is_integer(self) -> bool:
        return not (self.dtype.is_floating_point or self.dtype.is_complex)

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Domain:
    """The fields of all input tensors, in the order the model takes them."""

    fields: tuple[Field, ...]

    def check(self, inputs: Inputs, what: str) -> None:
        """Raise :class:`CorpusError` unless ``inputs`` fit this domain."""
        if len(inputs) != len(self.fields):
            raise CorpusError(
                f"{what} has {len(inputs)} input tensor(s), but the seeds have "
                f"{len(self.fields)}: give inputs of the same structure as seeds()."
            )
        for position, (tensor, field) in enumerate(zip(inputs, self.fields)):
            if tuple(tensor.shape[1:]) != field.shape or tensor.dtype != field.dtype:
                raise CorpusError(
                    f"{what}: input {position} has shape {tuple(tensor.shape[1:])} and "
                    f"dtype {tensor.dtype} per example, but the seeds have "
                    f"{field.shape} and {field.dtype}: give inputs shaped like the seeds."
                )


def as_inputs(value: object, what: str) -> Inputs:
    """Normalise a tensor or a tuple/list of tensors sharing N into a tuple."""
    tensors = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TargetError(
            f"{what} returned {type(value).__name__}: return a Tensor of shape (N, ...) "
            "or a tuple of tensors sharing N."
        )
    for position, tensor in enumerate(tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TargetError(
                f"{what} returned a {type(tensor).__name__} at position {position}: "
                "every input must be a torch.Tensor."
            )
        if tensor.dim() == 0:
            raise TargetError(f"{what} returned a 0-d tensor at position {position}: "
                              "give a batch dimension first, shape (N, ...).")
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise TargetError(f"{what} input {position} has dtype {tensor.dtype}: "
                              "nnfuzz fuzzes float and integer tensors.")
    sizes = {tensor.shape[0] for tensor in tensors}
    if len(sizes) != 1:
        raise TargetError(f"{what} returned tensors with different N {sorted(sizes)}: "
                          "all input tensors must share the batch dimension.")
    if 0 in sizes:
        raise TargetError(f"{what} returned no examples (N = 0): give at least one seed.")
    return tuple(tensor.detach().contiguous() for tensor in tensors)


def infer_domain(seeds: Inputs, bounds: object = None, origin: str = "the target") -> Domain:
    """The domain the seeds span, narrowed or widened by the target's ``BOUNDS``.

    ``origin`` (the target file's name) starts every error message.
    """
    pairs = _bounds_per_input(bounds, len(seeds), origin)
    fields = []
    for position, (tensor, pair) in enumerate(zip(seeds, pairs)):
        if tensor.dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
            raise TargetError(f"{origin}: seeds() input {position} holds NaN or Inf: seeds must be "
                              "finite, valid inputs; fix or drop those seeds.")
        low, high = pair if pair is not None else (tensor.min().item(), tensor.max().item())
        low, high = float(low), float(high)
        if not low <= high:
            raise TargetError(f"{origin}: BOUNDS for input {position} is ({low}, {high}): "
                              "low must not exceed high.")
        seed_low, seed_high = tensor.min().item(), tensor.max().item()
        if seed_low < low or seed_high > high:
            raise TargetError(
                f"{origin}: seeds input {position} spans [{seed_low}, {seed_high}], outside "
                f"BOUNDS ({low}, {high}): the seeds must be valid inputs; widen BOUNDS or fix the seeds."
            )
        is_integer = not tensor.dtype.is_floating_point
        fields.append(Field(
            shape=tuple(tensor.shape[1:]),
            dtype=tensor.dtype,
            low=low,
            high=high,
            pad=_trailing_pad(tensor) if is_integer else None,
        ))
    return Domain(tuple(fields))


def _bounds_per_input(bounds: object, count: int, origin: str) -> list[tuple[float, float] | None]:
    if bounds is None:
        return [None] * count
    if _is_pair(bounds):
        return [tuple(bounds)] * count  # type: ignore[list-item]
    if isinstance(bounds, Sequence) and len(bounds) == count and all(_is_pair(b) for b in bounds):
        return [tuple(b) for b in bounds]  # type: ignore[misc]
    raise TargetError(
        f"{origin}: BOUNDS = {bounds!r} is not a (low, high) pair nor a list of {count} such pairs: "
        "give one pair, or one per input tensor."
    )


def _is_pair(value: object) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


#: A value counts as padding when at least this share of the seeds end in it.
PAD_SHARE = 0.5


def _trailing_pad(tokens: torch.Tensor) -> int | None:
    """The value seeds end their sequences with, if most of them do."""
    if tokens.dim() < 2 or tokens.shape[-1] < 2:
        return None
    last = tokens[..., -1].flatten()
    values, counts = torch.unique(last, return_counts=True)
    best = int(counts.argmax())
    if counts[best].item() < PAD_SHARE * last.numel():
        return None
    return int(values[best].item())
