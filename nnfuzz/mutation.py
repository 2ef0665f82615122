"""Mutation: new valid inputs from old ones, a whole batch at a time.

Each example of a batch gets one mutation: one of its inputs, then one
operator for that input's kind, drawn at random. Continuous operators move an
input by noise at several scales, shift or stretch its values (brightness,
contrast), push parts of it to a bound, splice it with another input, or step
along the gradient that drives one layer's activations to an extreme (one
gradient serves GUIDED_CHILDREN mutants of the same parent, one at each noise
scale: the gradient pass costs about three forward passes per row, and it
was the largest cost of a batch on a small CNN). Image
levels take the same operators and are rounded. Token operators replace,
insert and delete values, padding the way the seeds pad. Flags are flipped.
Every kind also jumps to its structural edges, where real bugs cluster: an
all-zero or constant input, every value at a bound; an all-padding,
one-token or full-length sequence; flags all on or all off. Every mutant is
clipped into the bounds and, with a radius, projected back into the ball
around the seed it descends from; then the domain recomputes its masks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import torch

from nnfuzz.domain import CONTINUOUS, FLAGS, IMAGE, TOKENS, Domain, Field, Inputs
from nnfuzz.lineage import Batch

#: Noise scales, as fractions of the bounds' width: small steps refine, large
#: ones jump; no single scale suits every model.
NOISE_SCALES = (0.003, 0.03, 0.1, 0.3)
#: Share of the elements a sparse operator touches.
DENSITIES = (1.0, 0.1, 0.01)
#: Share of the elements pushed to a bound at once by ``saturate``: the whole
#: input at a bound is the ``edge`` operator's job.
SATURATION_DENSITIES = (0.3, 0.1, 0.01)
#: Share of the flags one flip changes (besides one flag it always flips).
FLIP_DENSITIES = (0.5, 0.1, 0.0)
#: Guided mutants per gradient: one parent's signed-gradient step at each noise scale.
GUIDED_CHILDREN = len(NOISE_SCALES)
#: Largest brightness offset, as a fraction of the width.
MAX_OFFSET = 0.3
#: Contrast factors are drawn log-uniformly in [exp(-MAX_LOG_CONTRAST), exp(+...)].
MAX_LOG_CONTRAST = 0.7
#: Longest run of tokens one insertion or deletion moves.
MAX_TOKEN_RUN = 4

#: The operators of each kind of input (masks are recomputed, never mutated).
OPERATORS = {
    CONTINUOUS: ("noise", "brightness", "contrast", "saturate", "crossover", "guided", "edge"),
    IMAGE: ("noise", "brightness", "contrast", "saturate", "crossover", "edge"),
    TOKENS: ("replace", "insert", "delete", "crossover", "edge"),
    FLAGS: ("flip", "crossover", "edge"),
}
#: Operators between inputs of the same shape, dtype and kind, where a model has such (a
#: Siamese pair, query and key): ``copy`` makes one equal to another, the degenerate case
#: they never reach by chance (cosine_similarity(x, x) exceeds 1 in float32 for about a
#: quarter of vectors, so acos of it is NaN: pytorch/pytorch#78064); ``swap`` exchanges
#: them. ``copy`` is an edge: it goes with the edge operator.
RELATIONAL = ("copy", "swap")
FLOAT_OPERATORS = OPERATORS[CONTINUOUS]
INTEGER_OPERATORS = OPERATORS[TOKENS]

#: Given inputs and a generator, the gradient direction to follow (one entry
#: per input tensor, None for integer ones), or None where there is none.
Gradient = Callable[[Inputs, torch.Generator], "tuple[torch.Tensor | None, ...] | None"]


@dataclass(frozen=True)
class MutationConfig:
    #: Bound on each mutant's distance from its seed; None lets chains drift anywhere in bounds.
    radius: float | None = None
    #: The norm of ``radius``: "linf" or "l2".
    norm: str = "linf"
    #: Whether the ``edge`` operator is in the mix. Off only to measure what the
    #: other operators and the coverage feedback find without it.
    edges: bool = True


class Mutator:
    """Mutates batches of inputs inside a :class:`Domain`."""

    def __init__(self, domain: Domain, config: MutationConfig = MutationConfig(),
                 gradient: Gradient | None = None) -> None:
        self.domain = domain
        self.config = config
        self.gradient = gradient
        self.mutable = [p for p, f in enumerate(domain.fields) if f.mutable]
        #: Each input's siblings: the other inputs of the same shape, dtype and kind (the two
        #: images of a Siamese pair, query and key), which the relational operators use.
        self.siblings = {p: [q for q in self.mutable if q != p and _alike(domain.fields[p],
                                                                            domain.fields[q])]
                         for p in self.mutable}
        self.operators = {p: self._operators_for(p) for p in self.mutable}
        #: Every (input position, operator) in drawing order; per input, its operators' count
        #: and the index of its first pair.
        self._pairs = [(p, name) for p in self.mutable for name in self.operators[p]]
        counts = [len(self.operators[p]) for p in self.mutable]
        self._counts = torch.tensor(counts)
        self._offsets = torch.tensor([0, *itertools.accumulate(counts)][:-1])

    def _operators_for(self, position: int) -> tuple[str, ...]:
        skip = {"guided"} if self.gradient is None else set()
        if not self.config.edges:
            skip.update(("edge", "copy"))
        relational = RELATIONAL if self.siblings[position] else ()
        kind = self.domain.fields[position].kind
        return tuple(name for name in OPERATORS[kind] + relational if name not in skip)

    def children(self, parents: Batch, anchors: Inputs, rng: torch.Generator
                 ) -> tuple[Batch, Batch]:
        """A child of each row: (the parent each child descends from, the children). The
        parent is the row's own but for guided mutants, which share one parent per gradient."""
        inputs, source = self.mutants(parents.inputs, anchors, rng)
        own = parents if source is None else parents.select(source)
        return own, Batch(inputs, own.root, own.depth + 1)

    def mutate(self, inputs: Inputs, anchors: Inputs, rng: torch.Generator) -> Inputs:
        """One mutant per example (see :meth:`mutants`, which also says which example each
        descends from)."""
        return self.mutants(inputs, anchors, rng)[0]

    def mutants(self, inputs: Inputs, anchors: Inputs, rng: torch.Generator
                ) -> tuple[Inputs, torch.Tensor | None]:
        """One mutant per example, and the example (B,) each descends from: its own (None
        when every one does), or for guided mutants the first of its group of
        GUIDED_CHILDREN. ``anchors`` are the seeds the examples descend from."""
        size = inputs[0].shape[0]
        mutants = [tensor.clone() for tensor in inputs]
        if not self.mutable:
            return tuple(mutants), None
        source: torch.Tensor | None = None
        for (position, name), rows in self._rows_by_operator(size, rng, inputs[0].device):
            if name in RELATIONAL:
                sibling = self._sibling(position, rows, rng)
                mutants[position][rows] = inputs[sibling][rows]
                if name == "swap":
                    mutants[sibling][rows] = inputs[position][rows]
                continue
            stepped = self._guided(position, inputs, rows, rng) if name == "guided" else None
            if stepped is None:
                # A guided row without a gradient takes noise instead.
                name = "noise" if name == "guided" else name
                mutants[position][rows] = self._apply(name, position, inputs, rows, rng)
                continue
            leaders, mutants[position][rows] = stepped
            source = torch.arange(size, device=rows.device) if source is None else source
            source[rows] = leaders
            for other, tensor in enumerate(inputs):  # the rest of each input is its parent's
                if other != position:
                    mutants[other][rows] = tensor[leaders]
        if source is not None:
            anchors = tuple(anchor[source.to(anchor.device)] for anchor in anchors)
        return self.constrained(tuple(mutants), anchors), source

    def constrained(self, inputs: Inputs, anchors: Inputs) -> Inputs:
        """Inputs brought into the domain: clipped into the bounds, projected into the
        ``radius`` ball around their anchors (seeds), masks recomputed."""
        return self.domain.normalize(tuple(self._constrain(m, a, f)
                                           for m, a, f in zip(inputs, anchors, self.domain.fields)))

    def _rows_by_operator(self, size: int, rng: torch.Generator, device: torch.device
                          ) -> list[tuple[tuple[int, str], torch.Tensor]]:
        """Each example's input and operator, drawn at random: ((position, operator), rows)
        for every pair some rows drew, in a fixed order, rows ascending. One sort and one
        read of the counts, where a mask per operator took five torch calls and a read each."""
        which = torch.randint(len(self.mutable), (size,), generator=rng, device=rng.device)
        pick = torch.randint(1 << 30, (size,), generator=rng, device=rng.device)
        choice = (self._offsets.to(which.device)[which]
                  + pick % self._counts.to(which.device)[which])
        order = torch.argsort(choice, stable=True).to(device)
        groups, start = [], 0
        for pair, count in zip(self._pairs, torch.bincount(choice, minlength=len(self._pairs)).tolist()):
            if count:
                groups.append((pair, order[start:start + count]))
            start += count
        return groups

    def _sibling(self, position: int, rows: torch.Tensor, rng: torch.Generator) -> int:
        """One of the input's siblings, drawn for the rows together."""
        siblings = self.siblings[position]
        return siblings[int(torch.randint(len(siblings), (1,), generator=rng,
                                          device=rng.device).item())]

    def _guided(self, position: int, inputs: Inputs, rows: torch.Tensor, rng: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Signed-gradient steps for ``rows``, in groups of GUIDED_CHILDREN: each group's
        first row is the parent of all of the group, stepped at each noise scale along its
        gradient. (the parent row of each mutant, the mutated rows of input ``position``), or
        None where there is no gradient."""
        firsts = rows[::GUIDED_CHILDREN]
        directions = self.gradient(tuple(t[firsts] for t in inputs), rng)  # type: ignore[misc]
        direction = directions[position] if directions is not None else None
        if direction is None:
            return None
        order = torch.arange(len(rows), device=rows.device)
        group = order // GUIDED_CHILDREN
        scales = torch.tensor(NOISE_SCALES, device=rows.device)[order % GUIDED_CHILDREN]
        leaders = firsts[group]
        stepped = guided_step(inputs[position][leaders], direction[group],
                              self.domain.fields[position], scales)
        return leaders, stepped

    def _apply(self, name: str, position: int, inputs: Inputs, rows: torch.Tensor,
               rng: torch.Generator) -> torch.Tensor:
        """The mutated rows of one input."""
        field = self.domain.fields[position]
        tensor = inputs[position]
        subset = tensor[rows]
        if name == "crossover":
            partner = tensor[torch.randint(tensor.shape[0], (len(rows),), generator=rng,
                                           device=rng.device).to(tensor.device)]
            return crossover(subset, partner, rng)
        if field.kind == IMAGE:
            return field.clamp(KIND_OPERATORS[CONTINUOUS][name](subset.float(), field, rng))
        return KIND_OPERATORS[field.kind][name](subset, field, rng)

    def _constrain(self, mutant: torch.Tensor, anchor: torch.Tensor, field: Field) -> torch.Tensor:
        if field.kind in (CONTINUOUS, IMAGE) and self.config.radius is not None:
            # Image levels are projected as reals, then rounded: within the radius up to 0.5.
            moved = project(mutant.float() if field.kind == IMAGE else mutant,
                            anchor.float() if field.kind == IMAGE else anchor,
                            self.config.radius, self.config.norm)
            return field.clamp(moved)
        return field.clamp(mutant)


def _alike(field: Field, other: Field) -> bool:
    """Inputs a relational operator may make equal: the same shape, dtype and kind (the copy
    is then clipped into its own bounds, like every mutant)."""
    return field.shape == other.shape and field.dtype == other.dtype and field.kind == other.kind


# --- float operators: (x (B, ...), field, rng) -> mutant of the same shape ---------

def _uniform(shape: tuple[int, ...], rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=rng, device=rng.device).to(like.device, like.dtype)


def _per_example(values: tuple[float, ...], x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One of ``values`` for each example, shaped to broadcast against x."""
    picks = torch.randint(len(values), (x.shape[0],), generator=rng, device=rng.device)
    table = torch.tensor(values, device=rng.device)
    return table[picks].to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


def _sparse_mask(x: torch.Tensor, rng: torch.Generator,
                 densities: tuple[float, ...] = DENSITIES) -> torch.Tensor:
    density = _per_example(densities, x, rng)
    return _uniform(tuple(x.shape), rng, x) < density


def add_noise(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    scale = _per_example(NOISE_SCALES, x, rng) * field.width
    noise = torch.randn(tuple(x.shape), generator=rng, device=rng.device).to(x.device, x.dtype)
    return x + noise * scale * _sparse_mask(x, rng)


def shift_brightness(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    offset = (_uniform((x.shape[0],), rng, x) * 2 - 1) * MAX_OFFSET * field.width
    return x + offset.view(-1, *([1] * (x.dim() - 1)))


def stretch_contrast(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    log_factor = (_uniform((x.shape[0],), rng, x) * 2 - 1) * MAX_LOG_CONTRAST
    factor = log_factor.exp().view(-1, *([1] * (x.dim() - 1)))
    mean = x.reshape(x.shape[0], -1).mean(1).view_as(factor)
    return mean + (x - mean) * factor


def saturate(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    high = _uniform((x.shape[0],), rng, x).view(-1, *([1] * (x.dim() - 1))) < 0.5
    bound = torch.where(high, field.high, field.low).to(x.dtype)
    return torch.where(_sparse_mask(x, rng, SATURATION_DENSITIES), bound, x)


def crossover(x: torch.Tensor, partner: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Splice two inputs: each element from one or the other."""
    return torch.where(_uniform(tuple(x.shape), rng, x) < 0.5, x, partner)


def guided_step(x: torch.Tensor, direction: torch.Tensor, field: Field,
                scales: torch.Tensor) -> torch.Tensor:
    """A signed-gradient step (as in FGSM) of each example, at its scale (B,) of the width."""
    scale = (scales * field.width).to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return x + direction.sign().to(x.dtype) * scale


VALUE_OPERATORS = {
    "noise": add_noise,
    "brightness": shift_brightness,
    "contrast": stretch_contrast,
    "saturate": saturate,
}


# --- token operators: along the last dimension, shape kept -------------------------

def _positions(x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A position (B, 1) per example along the last dim, and the index row (1, L)."""
    flat = x.reshape(x.shape[0], -1)
    length = flat.shape[1]
    where = torch.randint(length, (x.shape[0], 1), generator=rng, device=rng.device).to(x.device)
    return where, torch.arange(length, device=x.device).view(1, -1)


def _random_tokens(shape: tuple[int, ...], field: Field, rng: torch.Generator,
                   like: torch.Tensor) -> torch.Tensor:
    values = torch.randint(int(field.low), int(field.high) + 1, shape, generator=rng,
                           device=rng.device)
    return values.to(like.device, like.dtype)


def replace_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1).clone()
    where, _ = _positions(x, rng)
    flat.scatter_(1, where, _random_tokens(tuple(where.shape), field, rng, x))
    return flat.view_as(x)


def insert_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Insert a run of random tokens; what is pushed past the end is dropped."""
    flat = x.reshape(x.shape[0], -1)
    where, index = _positions(x, rng)
    run = torch.randint(1, MAX_TOKEN_RUN + 1, (x.shape[0], 1), generator=rng,
                        device=rng.device).to(x.device)
    source = torch.where(index < where, index, (index - run).clamp(min=0))
    shifted = flat.gather(1, source)
    fresh = _random_tokens(tuple(flat.shape), field, rng, x)
    inserted = (index >= where) & (index < where + run)
    return torch.where(inserted, fresh, shifted).view_as(x)


def delete_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Delete a run of tokens; the end is filled with padding, as the seeds pad."""
    flat = x.reshape(x.shape[0], -1)
    length = flat.shape[1]
    where, index = _positions(x, rng)
    run = torch.randint(1, MAX_TOKEN_RUN + 1, (x.shape[0], 1), generator=rng,
                        device=rng.device).to(x.device)
    source = torch.where(index < where, index, index + run)
    shifted = flat.gather(1, source.clamp(max=length - 1))
    if field.pad is not None:
        filler = torch.full_like(flat, field.pad)
    else:
        filler = _random_tokens(tuple(flat.shape), field, rng, x)
    return torch.where(source >= length, filler, shifted).view_as(x)


TOKEN_OPERATORS = {
    "replace": replace_tokens,
    "insert": insert_tokens,
    "delete": delete_tokens,
}


# --- edges: whole inputs at the structural extremes ------------------------------

def _constant(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value (B,) per example, filling the example's whole shape."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1))).expand_as(like).clone()


def edge_values(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """A constant input: all zero (or the bound nearest zero), all low, all high, a random
    constant, or the example's own mean (silence, a blank image, a flat signal)."""
    size = x.shape[0]
    zero = min(max(0.0, field.low), field.high)
    choices = torch.stack((
        torch.full((size,), zero), torch.full((size,), field.low), torch.full((size,), field.high),
        field.low + field.width * torch.rand(size, generator=rng, device=rng.device).cpu(),
        x.reshape(size, -1).double().mean(1).cpu() if x[0].numel() else torch.zeros(size),
    ), 1).double()  # (B, 5)
    variant = torch.randint(choices.shape[1], (size,), generator=rng, device=rng.device).cpu()
    return _constant(choices[torch.arange(size), variant], x)


def _non_pad_tokens(shape: tuple[int, ...], field: Field, rng: torch.Generator,
                    like: torch.Tensor) -> torch.Tensor:
    tokens = _random_tokens(shape, field, rng, like)
    if field.pad is None or field.high <= field.low:
        return tokens
    span = int(field.high) - int(field.low) + 1
    shifted = (tokens - int(field.low) + 1) % span + int(field.low)
    return torch.where(tokens == field.pad, shifted, tokens)


def edge_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """An all-padding sequence, a single token, a full-length one, or one token repeated."""
    flat = x.reshape(x.shape[0], -1)
    pad = field.pad if field.pad is not None else int(field.low)
    index = torch.arange(flat.shape[1], device=x.device).view(1, -1)
    fresh = _non_pad_tokens(tuple(flat.shape), field, rng, x)
    first = torch.where(flat[:, :1] == pad, fresh[:, :1], flat[:, :1])
    choices = torch.stack((
        torch.full_like(flat, pad),
        torch.where(index == 0, first, pad),
        torch.where(flat == pad, fresh, flat) if field.pad is not None else fresh,
        fresh[:, :1].expand_as(flat),
    ), 0)  # (4, B, L)
    variant = torch.randint(choices.shape[0], (flat.shape[0],), generator=rng,
                            device=rng.device).to(x.device)
    return choices[variant, torch.arange(flat.shape[0], device=x.device)].view_as(x)


def flip_flags(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Flip one flag, and a share of the others."""
    flat = x.reshape(x.shape[0], -1)
    where, index = _positions(x, rng)
    flips = (index == where) | _sparse_mask(flat.float(), rng, FLIP_DENSITIES)
    return torch.where(flips, (flat == 0).to(x.dtype), flat).view_as(x)


def edge_flags(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Every flag on, or every flag off."""
    on = torch.randint(2, (x.shape[0],), generator=rng, device=rng.device)
    return _constant(on, x)


#: The operators of each kind by name; crossover and guided steps are the Mutator's own.
KIND_OPERATORS: dict[str, dict[str, Callable[[torch.Tensor, Field, torch.Generator], torch.Tensor]]] = {
    CONTINUOUS: {**VALUE_OPERATORS, "edge": edge_values},
    TOKENS: {**TOKEN_OPERATORS, "edge": edge_tokens},
    FLAGS: {"flip": flip_flags, "edge": edge_flags},
}


# --- constraints -------------------------------------------------------------------

def project(x: torch.Tensor, anchor: torch.Tensor, radius: float, norm: str) -> torch.Tensor:
    """Project each example of x into the ``norm`` ball of ``radius`` around its anchor."""
    if norm == "linf":
        return torch.maximum(torch.minimum(x, anchor + radius), anchor - radius)
    delta = (x - anchor).reshape(x.shape[0], -1)
    length = delta.norm(dim=1, keepdim=True)
    factor = torch.clamp(radius / length.clamp(min=1e-30), max=1.0)
    # Shrink a hair more than exact so rounding cannot leave a mutant just outside.
    factor = torch.where(factor < 1.0, factor * (1 - 1e-6), factor)
    return anchor + (delta * factor).view_as(x)


def distance(x: torch.Tensor, anchor: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example distance (B,) between inputs and their anchors, in ``norm``."""
    delta = (x.double() - anchor.double()).reshape(x.shape[0], -1)
    if delta.shape[1] == 0:
        return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


def input_distance(inputs: Inputs, seed: Inputs, norm: str) -> float:
    """Distance of an input from its seed: the norm over float tensors, changed
    values over integer ones, combined across tensors in the same norm."""
    parts = []
    for tensor, anchor in zip(inputs, seed):
        if tensor.dtype.is_floating_point:
            parts.append(float(distance(tensor.unsqueeze(0), anchor.unsqueeze(0), norm)[0]))
        else:
            parts.append(float((tensor != anchor).sum()))
    if not parts:
        return 0.0
    return max(parts) if norm == "linf" else sum(p * p for p in parts) ** 0.5
