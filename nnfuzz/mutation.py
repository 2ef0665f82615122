"""Mutation: new valid inputs from old ones, a whole batch at a time.

Each example of a batch gets one mutation: one of its inputs, then one
operator for that input's kind (nnfuzz.operators), drawn at random; inputs of
the same shape, dtype and kind may also be copied onto or swapped with each
other. The gradient step is scheduled here: one gradient serves
GUIDED_CHILDREN mutants of the same parent, one at each noise scale (the
gradient pass costs about three forward passes per row, and it was the
largest cost of a batch on a small CNN). Image levels take the continuous
operators and are rounded. Every mutant is clipped into the bounds and, with
a radius, projected back into the ball around the seed it descends from;
then the domain recomputes its masks. Once told what a batch's mutants yielded
(:meth:`Mutator.observe`), the Mutator deals the next batch's rows to the
operators by their yield per forward pass (nnfuzz.schedule); until then, and
without a schedule, every row draws its input and operator uniformly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import torch

from nnfuzz.domain import CONTINUOUS, FLAGS, IMAGE, TOKENS, Domain, Field, Inputs
from nnfuzz.lineage import Batch
from nnfuzz.operators import KIND_OPERATORS, NOISE_SCALES, crossover, guided_step, table_of
from nnfuzz.schedule import GRADIENT_COST, Schedule

#: Guided mutants per gradient: one parent's signed-gradient step at each noise scale.
GUIDED_CHILDREN = len(NOISE_SCALES)
#: What a guided mutant costs, in forward passes: its own, and its share of the gradient pass.
GUIDED_COST = 1.0 + GRADIENT_COST / GUIDED_CHILDREN
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
    #: Whether the operators' shares of a batch follow what they yield (nnfuzz.schedule),
    #: once the Mutator is told (:meth:`Mutator.observe`); off, every row draws uniformly.
    schedule: bool = True


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
        #: Each pair's share of a batch (its base: the uniform draw's), by what it yields.
        self.schedule = Schedule(
            [1 / (len(self.mutable) * len(self.operators[p])) for p, _ in self._pairs],
            [GUIDED_COST if name == "guided" else 1.0 for _, name in self._pairs],
        ) if config.schedule and self._pairs else None
        #: The pair (its index in drawing order) each row of the last batch was dealt.
        self._dealt: torch.Tensor | None = None

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
        if source is not None and self.needs_anchors:
            anchors = tuple(anchor[source.to(anchor.device)] for anchor in anchors)
        return self.constrained(tuple(mutants), anchors), source

    @property
    def needs_anchors(self) -> bool:
        """Whether the anchors are read at all: only to project into the ``radius`` ball (the
        loop gathers its parents' seeds for a batch only then)."""
        return self.config.radius is not None

    def constrained(self, inputs: Inputs, anchors: Inputs) -> Inputs:
        """Inputs brought into the domain: clipped into the bounds, projected into the
        ``radius`` ball around their anchors (seeds), masks recomputed."""
        return self.domain.normalize(tuple(self._constrain(m, a, f)
                                           for m, a, f in zip(inputs, anchors, self.domain.fields)))

    def observe(self, kept: torch.Tensor) -> None:
        """What the last batch's mutants yielded: a mask (B,) of those that set a record
        (Coverage.recorded); the schedule's shares follow. Ignored for any other batch (a
        descent walk's)."""
        dealt, self._dealt = self._dealt, None
        if self.schedule is None or dealt is None or len(dealt) != len(kept):
            return
        arms = len(self._pairs)
        self.schedule.observe(torch.bincount(dealt, minlength=arms),
                              torch.bincount(dealt, kept.to(dealt.device).double(), minlength=arms))

    def _rows_by_operator(self, size: int, rng: torch.Generator, device: torch.device
                          ) -> list[tuple[tuple[int, str], torch.Tensor]]:
        """Each example's input and operator: ((position, operator), rows) for every pair some
        rows got, in a fixed order, rows ascending. Dealt by the schedule once it has seen a
        batch, else drawn at random. One sort and one read of the counts, where a mask per
        operator took five torch calls and a read each."""
        if self.schedule is not None and self.schedule.observed:
            counts = self.schedule.counts(size).to(rng.device)
            dealt = torch.repeat_interleave(torch.arange(len(counts), device=rng.device), counts)
            choice = dealt[torch.randperm(size, generator=rng, device=rng.device)]
        else:
            which = torch.randint(len(self.mutable), (size,), generator=rng, device=rng.device)
            pick = torch.randint(1 << 30, (size,), generator=rng, device=rng.device)
            choice = (self._offsets.to(which.device)[which]
                      + pick % self._counts.to(which.device)[which])
        self._dealt = choice
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
        scales = table_of(NOISE_SCALES, rows.device)[order % GUIDED_CHILDREN]
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


# --- constraints -------------------------------------------------------------------

def project(x: torch.Tensor, anchor: torch.Tensor, radius: float, norm: str) -> torch.Tensor:
    """Project each example of x into the ``norm`` ball of ``radius`` around its anchor."""
    if norm == "linf":
        return torch.maximum(torch.minimum(x, anchor + radius), anchor - radius)
    delta = (x - anchor).reshape(x.shape[0], -1)
    length = delta.norm(dim=1, keepdim=True)
    factor = torch.clamp(radius / length.clamp(min=1e-30), max=1.0)
    # Minimize a hair more than exact so rounding cannot leave a mutant just outside.
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
