"""What a target can declare about an input, where inference cannot know it.

A target's ``INPUTS`` gives one of these per input tensor: a mapping by name
for named inputs (``seeds()`` returned a dict), a list by position, or a
single kind for a single tensor. Every input it leaves out is inferred from
its dtype and the seeds (see :func:`nnfuzz.domain.infer_domain`)::

    INPUTS = {
        "input_ids": nnfuzz.Tokens(vocab=30522, pad=0),
        "attention_mask": nnfuzz.Mask(follows="input_ids"),
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Continuous:
    """Real values in ``[low, high]``, moved by noise, shifts and gradients.

    Bounds given here or in ``BOUNDS``; without either they are the seeds'
    min and max, with a warning.
    """

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Tokens:
    """Token ids in ``0 .. vocab - 1``: replaced, inserted and deleted.

    ``pad``: the id sequences are padded with at their end. A sequence is then
    real tokens followed by padding, and stays so after every mutation.
    """

    vocab: int | None = None
    pad: int | None = None


@dataclass(frozen=True)
class Image:
    """Integer intensities (a uint8 image, 8-bit audio): mutated like real
    values, then rounded. Bounds default to 0..255 for uint8, else the seeds'."""

    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class Flags:
    """Booleans (or 0/1 integers) that are free to change: mutated by flipping."""


@dataclass(frozen=True)
class Mask:
    """A padding mask that follows a token input: never mutated on its own, but
    recomputed from the mutated tokens.

    ``follows``: the token input's name (or position). ``marks``: "tokens" when
    the mask is 1/True on real tokens (Hugging Face's ``attention_mask``),
    "padding" when it is True on padding (``nn.Transformer``'s
    ``src_key_padding_mask``).
    """

    follows: str | int
    marks: Literal["tokens", "padding"] = "tokens"


Kind = Continuous | Tokens | Image | Flags | Mask
KINDS = (Continuous, Tokens, Image, Flags, Mask)
