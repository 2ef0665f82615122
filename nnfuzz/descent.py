"""Descent: walks of many gradient steps, for bugs at the end of a long chain.

A guided mutation takes one signed-gradient step from a parent drawn among
thousands, so a bug that needs a hundred steps the same way (a logit margin
past float32's underflow, every unit of a layer pushed dead) waits for that
chain to form by chance, and it rarely does. Descent forms it on purpose, as
RANUM's second stage and PGD with restarts do: from time to time it starts a
walk from a few seeds and uniform points of the domain and moves every one of
them along the signed gradient of a quantity (a guiding objective's
pressure, such as minus the loss, or a module statistic toward an extreme;
nnfuzz.guidance draws it; PUSHES of them per walk, each followed by a share
of its starts, all in one gradient pass) until no quantity moves any more or
MAX_STEPS are taken. Every step is clipped and projected into the domain and run through
the model as a batch of mutants is, so every step is judged; the walk's last
step is offered to coverage, so what it reached can be fuzzed further.

Walks get a share of the executions, and the share follows what they earn:
a walk that finds a new failure, or takes one of its quantities past the
corpus's record, raises it; one that does neither lowers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from nnfuzz.corpus import Corpus
from nnfuzz.domain import CONTINUOUS, Domain
from nnfuzz.guidance import Guidance, Push
from nnfuzz.lineage import Batch
from nnfuzz.mutation import Mutator
from nnfuzz.operators import guided_step

#: Starts per walk: half seeds, half uniform points (a walk's steps run as one batch). The
#: same at every --batch-size: walks are paid in executions, so a wider walk takes fewer steps
#: for its share, and the chains need steps. An eighth of the batch (32 at batch 256, 120 at
#: 1,000) kept the model busier but lost the chains: chain_xent was found in 6 of 10 runs of
#: 20,000 executions at batch 256 (median 13,504) and 4 of 10 at 1,000, against 10 of 10
#: (median 1,232) and 9 of 10 (1,784) with 16 starts; chain_std alike or better.
WIDTH = 16
#: Quantities per walk, each followed by every PUSHES-th start: which one leads to a bug
#: is not known, and one gradient pass serves them all.
PUSHES = 4
#: The longest walk, in steps.
MAX_STEPS = 128
#: A walk ends when none of its quantities has improved for this many steps...
PATIENCE = 8
#: ... by more than this share of its size (or, near zero, of one).
PLATEAU = 1e-3
#: Step sizes, as shares of the bounds' width; each walk draws one. The smaller follow a
#: curved path further, the larger cross the domain in a few steps.
STEP_SIZES = (0.01, 0.03)
#: The share of the work walks start with, and its range. It grows by EARN_STEP after a
#: walk that earned, and shrinks by it after one that did not.
START_SHARE, MIN_SHARE, MAX_SHARE = 0.1, 0.02, 0.25
EARN_STEP = 1.5
#: How far walks may run ahead of their share, in executions of the loop: the first walk
#: takes its first few dozen steps in a row (most walks that reach a bug, reach it there).
CREDIT = 3_000
#: What one execution of a walk costs, in executions of the fuzz loop: its step's gradient
#: pass is about two forward passes more (a small CNN: 0.705 of its raw speed without walks,
#: 0.317 with walks counted as one execution each at batch 1000). The share is of this work.
STEP_COST = 3


@dataclass
class Walk:
    """One walk: its iterates (lineage included), what it pushes, how far it got."""

    iterates: Batch
    #: What it pushes: start ``r`` follows ``pushes[r % len(pushes)]``.
    pushes: list[Push]
    #: The same, as the pushes' columns and signs on the device (:func:`pushed`).
    pushed: tuple[torch.Tensor, torch.Tensor]
    #: The step, as a share of each float input's width.
    step_size: float
    #: Each pushed column's record when the walk started, and the best the walk reached
    #: (both signed so that lower is further, as :func:`progress`).
    records: torch.Tensor
    best: torch.Tensor
    steps: int = 0
    since_best: int = 0
    #: New failures found along the way.
    found: int = 0
    #: Executions it took.
    execs: int = 0

    @property
    def earned(self) -> bool:
        """A new failure, or a quantity taken past the corpus's record."""
        return self.found > 0 or bool((self.best < self.records).any())




class Descent:
    """Schedules walks between the fuzz loop's batches, and takes their steps."""

    def __init__(self, domain: Domain, mutator: Mutator, guidance: Guidance,
                 labels: torch.Tensor | None, width: int = WIDTH) -> None:
        """``labels``: each seed's label (targets()), for pressures that need one."""
        self.domain, self.mutator, self.guidance = domain, mutator, guidance
        self.labels, self.width = labels, width
        self.share = START_SHARE
        #: The work walks have taken, in executions of the loop (STEP_COST each of theirs).
        self.spent = 0
        self.walk: Walk | None = None
        self.walks = 0

    @staticmethod
    def applies(domain: Domain) -> bool:
        """Walks need a float input to move along a gradient."""
        return any(field.kind == CONTINUOUS for field in domain.fields)

    def due(self, execs: int) -> bool:
        """Whether the next batch is a walk's step: after the loop's first batch, whenever
        walks have had less than their share of the work so far (``execs``, of the loop and
        of walks), plus CREDIT. A walk's steps need not follow each other: past its credit,
        a walk goes on between the loop's batches at its share's pace."""
        return execs > 0 and self.spent < self.share * execs + CREDIT

    def next_iterates(self, corpus: Corpus, records: tuple[torch.Tensor, torch.Tensor],
                      rng: torch.Generator) -> Batch | None:
        """The batch to run next: a new walk's starts, or one step further along the walk.
        None when there is nothing to push (no finite record yet) or no gradient to push it
        by (the walk then ends): the walk's share is then spent as if a batch was run, so
        that the fuzz loop's own batches come next."""
        if self.walk is None:
            self.walk = self._start(corpus, records, rng)
            if self.walk is None:
                self.spent += self.width
                return None
            return self.walk.iterates
        walk = self.walk
        iterates = walk.iterates
        labels = self._labels(iterates.root)
        directions = self.guidance.direction(iterates.inputs, walk.pushes, labels)
        if directions is None:
            self.finish()
            self.spent += self.width
            return None
        moved = tuple(
            guided_step(tensor, direction, field, torch.full((tensor.shape[0],), walk.step_size))
            if direction is not None and field.kind == CONTINUOUS else tensor
            for tensor, direction, field in zip(iterates.inputs, directions, self.domain.fields))
        anchors = corpus.root_inputs(iterates.root)
        walk.iterates = replace(iterates, inputs=self.mutator.constrained(moved, anchors),
                                depth=iterates.depth + 1, vectors=None, index=None)
        return walk.iterates

    def observe(self, signals: torch.Tensor, found: int) -> bool:
        """Record what the walk's latest iterates gave (their signals, how many new
        failures); whether the walk has ended (a plateau, or MAX_STEPS)."""
        walk = self.walk
        assert walk is not None
        walk.steps += 1
        walk.found += found
        walk.execs += walk.iterates.size
        self.spent += walk.iterates.size * STEP_COST
        reached = progress(*walk.pushed, signals)
        tolerance = PLATEAU * torch.where(torch.isfinite(walk.best), walk.best.abs(), 0.0).clamp(min=1.0)
        if bool((reached < walk.best - tolerance).any()):
            walk.since_best = 0
        else:
            walk.since_best += 1
        walk.best = torch.minimum(walk.best, reached)
        return walk.steps >= MAX_STEPS or walk.since_best >= PATIENCE

    def finish(self) -> Walk:
        """End the walk under way; its share of executions follows what it earned."""
        walk = self.walk
        assert walk is not None
        self.walk = None
        self.walks += 1
        self.share = (min(MAX_SHARE, self.share * EARN_STEP) if walk.earned
                      else max(MIN_SHARE, self.share / EARN_STEP))
        return walk

    # --- starting a walk ----------------------------------------------------------

    def _start(self, corpus: Corpus, records: tuple[torch.Tensor, torch.Tensor],
               rng: torch.Generator) -> Walk | None:
        pushes = [self.guidance.draw(rng) for _ in range(PUSHES)]
        if any(push is None for push in pushes):
            return None
        roots = torch.randint(corpus.seed_count, (self.width,), generator=rng,
                              device=rng.device).to(corpus.device)
        seeds = corpus.root_inputs(roots)
        # Seeds and uniform starts alternate in pairs, so that each push follows both.
        uniform = (torch.arange(self.width, device=corpus.device) // PUSHES) % 2 == 1
        starts = tuple(_uniform_where(tensor, uniform, field.low, field.high, rng)
                       if field.kind == CONTINUOUS else tensor
                       for tensor, field in zip(seeds, self.domain.fields))
        low, high = records
        record = torch.stack([low[p.column] if p.lower else -high[p.column] for p in pushes])
        step_size = STEP_SIZES[int(torch.randint(len(STEP_SIZES), (1,), generator=rng,
                                                 device=rng.device).item())]
        iterates = Batch(self.mutator.constrained(starts, seeds), roots, uniform.long())
        return Walk(iterates, pushes, pushed(pushes, corpus.device), step_size,
                    record.float().cpu(), torch.full((PUSHES,), math.inf))  # type: ignore[arg-type]

    def _labels(self, roots: torch.Tensor) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[roots.to(self.labels.device)]


def pushed(pushes: list[Push], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The pushes' columns and signs (+1 pushed down, -1 up), on ``device``: made once per
    walk, since on a GPU each is a copy from the host."""
    return (torch.tensor([push.column for push in pushes], device=device),
            torch.tensor([1.0 if push.lower else -1.0 for push in pushes], device=device))


def progress(columns: torch.Tensor, signs: torch.Tensor, signals: torch.Tensor) -> torch.Tensor:
    """How far each push (its column and sign, :func:`pushed`) got on a batch (PUSHES,): the
    lowest value, over the examples that follow it, of its column signed so that lower is
    further (inf where none is finite). All pushes at once: it runs at every step of a walk."""
    count = len(columns)
    values = signals[:, columns].float() * signs  # (B, pushes)
    follows = (torch.arange(signals.shape[0], device=signals.device) % count).unsqueeze(1) == \
        torch.arange(count, device=signals.device)
    return torch.where(follows & torch.isfinite(values), values, math.inf).amin(0).cpu()


def _uniform_where(tensor: torch.Tensor, rows: torch.Tensor, low: float, high: float,
                   rng: torch.Generator) -> torch.Tensor:
    """``tensor`` with the chosen ``rows`` replaced by uniform values in [low, high]."""
    uniform = torch.rand(tuple(tensor.shape), generator=rng, device=rng.device)
    uniform = (low + (high - low) * uniform).to(tensor.device, tensor.dtype)
    view = rows.view(-1, *([1] * (tensor.dim() - 1)))
    return torch.where(view, uniform, tensor)
