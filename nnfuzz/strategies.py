"""Hypothesis strategies over a target's input domain: ``@given(inputs(target))``.

An example is drawn as a departure from a real input (a seed, or a file of a
saved corpus), never from scratch: a model's inputs are a thin set inside their
bounds (digits, sentences, padded batches), and a departure that shrinks
toward a real input tells the user what broke it. Each draw picks the real
input, then for each input tensor an optional fill (every value one value: a
blank image, an all-padding sequence), optional noise (how many values, a scale and a
seed) and a short list of single-value edits; hypothesis shrinks all of them
toward "the first seed, unchanged". Every draw goes through the domain: bounds,
image levels rounded, padding kept at the end, masks recomputed from their tokens.

hypothesis-torch (2.0.7) was read and not used: its ``tensor_strategy`` draws
tensors element-wise from a dtype and shape, knows no vocabulary, padding or
mask, and pins ``torch<3,>=2.4``; what it would give here is ``hypothesis``'s
own integers and floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.domain import CONTINUOUS, FLAGS, IMAGE, Domain, Field, Inputs
from nnfuzz.errors import UsageError
from nnfuzz.target import Target, load_target

#: Single-value edits per input tensor, at most.
MAX_EDITS = 8


def inputs(target: Target | str | Path, *, corpus: str | Path | None = None,
           max_edits: int = MAX_EDITS) -> st.SearchStrategy[Any]:
    """One example of ``target``'s inputs (batch of one), as the model is called with it: a
    tensor, a tuple of tensors, or a dict by keyword, as ``seeds()`` gave them. ``target`` is
    a loaded Target or a target file's path (loaded at the first draw); ``corpus``: a folder
    of saved inputs (an output folder's ``corpus/``) to start from besides the seeds."""
    return st.deferred(lambda: _inputs(_loaded(target), corpus, max_edits))


def _loaded(target: Target | str | Path) -> Target:
    return target if isinstance(target, Target) else load_target(target)


def _inputs(target: Target, corpus: str | Path | None, max_edits: int) -> st.SearchStrategy[Any]:
    domain = target.domain()
    starts = _starting_rows(target, domain, corpus)
    shape = _as_seeds_gave_them(target)

    @st.composite
    def draw_example(draw: st.DrawFn) -> Any:
        start = starts[draw(st.integers(0, len(starts) - 1))]
        tensors = tuple(_departure(draw, tensor, field, max_edits) if field.mutable else tensor
                        for tensor, field in zip(start, domain.fields))
        return shape(domain.normalize(tensors))

    return draw_example()


def _starting_rows(target: Target, domain: Domain, corpus: str | Path | None) -> list[Inputs]:
    """The real inputs a draw departs from, one example each: the seeds, then the corpus."""
    batches = [target.seeds] if target.seeds is not None else []
    if corpus is not None:
        folder = Path(corpus)
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such corpus folder: give an output folder's corpus/.")
        batches += [tuple(t.unsqueeze(0) for t in inputs)
                    for _, inputs, _, _ in CorpusFolder(folder).scan(domain) if inputs is not None]
    rows = [tuple(t[i:i + 1].clone() for t in batch) for batch in batches
            for i in range(len(batch[0]))]
    if not rows:
        raise UsageError(f"{target.origin} has no seeds() and the corpus is empty: nothing to "
                         "draw inputs from.")
    return rows


def _as_seeds_gave_them(target: Target) -> Any:
    """Inputs -> the structure seeds() returned (one tensor, a tuple, a dict)."""
    names = target.input_names
    if names is not None:
        return lambda tensors: dict(zip(names, tensors))
    single = target.seeds is not None and len(target.seeds) == 1
    return (lambda tensors: tensors[0]) if single else (lambda tensors: tensors)


def _departure(draw: st.DrawFn, tensor: torch.Tensor, field: Field, max_edits: int) -> torch.Tensor:
    """``tensor`` (1, ...) filled, noised and edited as drawn, inside the field."""
    values = tensor.flatten().clone()
    fill = draw(st.none() | _value(field))
    if fill is not None:
        values[:] = fill
    count = draw(st.integers(0, values.numel()))
    if count:
        scale = draw(st.sampled_from((0.01, 0.05, 0.2, 1.0)))
        values = _noised(values, field, count, scale, draw(st.integers(0, 2**32 - 1)))
    for position, value in draw(st.lists(st.tuples(st.integers(0, values.numel() - 1),
                                                   _value(field)), max_size=max_edits)):
        values[position] = value
    return field.clamp(values.reshape(tensor.shape)).to(tensor.dtype)


def _value(field: Field) -> st.SearchStrategy[Any]:
    """One value of the field: floats in the bounds (the bounds themselves included), levels,
    token ids, flags."""
    if field.kind == FLAGS:
        return st.booleans()
    if field.kind == CONTINUOUS and not field.is_integer:
        width = 32 if field.dtype in (torch.float32, torch.float16, torch.bfloat16) else 64
        return st.floats(field.low, field.high, width=width)  # type: ignore[arg-type]
    return st.integers(int(field.low), int(field.high))


def _noised(values: torch.Tensor, field: Field, count: int, scale: float,
            seed: int) -> torch.Tensor:
    """Noise at ``count`` positions chosen by ``seed``, of ``scale`` times the field's width
    (tokens: replaced, flags: flipped). The positions are a prefix of one permutation and
    each keeps its noise value, so a smaller count (what hypothesis shrinks to) keeps a
    subset of the same changes."""
    rng = torch.Generator().manual_seed(seed)
    order = torch.randperm(values.numel(), generator=rng)
    chosen = torch.zeros(values.numel(), dtype=torch.bool)
    chosen[order[:count]] = True
    if field.kind == FLAGS:
        return torch.where(chosen, ~values.bool(), values.bool())
    if field.is_integer and field.kind != IMAGE:
        tokens = torch.randint(int(field.low), int(field.high) + 1, values.shape, generator=rng)
        return torch.where(chosen, tokens.to(values.dtype), values)
    noise = (torch.rand(values.shape, generator=rng) * 2 - 1) * scale * field.width
    return torch.where(chosen, values.double() + noise.double(), values.double())
