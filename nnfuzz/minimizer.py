"""Minimizing a failing input toward its seed while the same failure still fires.

A reproducer found after a chain of mutations is usually far from its seed;
what the bug needs is often much less. Like libFuzzer's ``-minimize_crash``
and Hypothesis's shrinker, ``minimize`` keeps the signature fixed and
moves the input back: first along the straight line from the seed (for float
inputs, by bisection), then by resetting blocks of values, and finally single
values, to the seed's (delta debugging). Integer (token) inputs skip the line.
Every step is deterministic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import torch

from nnfuzz.config import NO_DEADLINE, Deadline
from nnfuzz.domain import Domain, Inputs
from nnfuzz.mutation import input_distance
from nnfuzz.reproducer import Failure

if TYPE_CHECKING:
    from nnfuzz.execution import Executor
    from nnfuzz.objectives import Objective

#: Bisection steps along the line from seed to input: 2^-20 of the way is close enough.
BISECTION_STEPS = 20
#: At most this many candidate inputs are run in all: shrinking must stay quick.
MAX_CANDIDATES = 4_096
#: Candidates per forward pass while resetting blocks.
BATCH = 256

#: Given candidate inputs (a batch), which of them still fail with the same signature.
Check = Callable[[Inputs], torch.Tensor]


def signature_check(failure: Failure, objective: "Objective", executor: "Executor") -> Check:
    """The check that keeps a failure the same bug: ``objective`` still fires on a
    candidate with the failure's signature (each candidate carries its label)."""

    def still_fails(batch: Inputs) -> torch.Tensor:
        execution = executor.run(tuple(t.to(executor.device) for t in batch)).label_all(
            failure.label)
        mask = torch.zeros(execution.size, dtype=torch.bool)
        for finding in objective.judge(execution):
            if finding.signature == failure.signature:
                mask[finding.example] = True
        return mask

    return still_fails


def reproduces(failure: Failure, still_fails: Check) -> bool:
    """Whether the failure's own input fails the check when run alone."""
    return bool(still_fails(tuple(t.unsqueeze(0) for t in failure.inputs))[0])


def minimize(failure: Failure, still_fails: Check, domain: Domain | None = None,
             deadline: Deadline = NO_DEADLINE) -> Failure:
    """A copy of ``failure`` whose inputs are as close to its seed as the check allows.

    With the target's ``domain``, masks are not shrunk but recomputed from their
    tokens, and padded sequences stay padded at the end, in every candidate. At
    the run's ``deadline``, shrinking stops where it is: a run's
    --max-time bounds its minimization too.
    """
    started = time.monotonic()
    current = tuple(t.clone() for t in failure.inputs)
    seed = failure.seed
    valid = _valid_under(domain)
    counted = _Counted(_until(deadline, still_fails))
    lined = _along_the_line(current, seed, counted)
    positions = [p for p in range(len(current)) if domain is None or domain.fields[p].mutable]
    moved = any(not torch.equal(a, b) for a, b in zip(lined, current))
    if moved or _some_value_can_go_back(lined, seed, counted, valid, positions):
        lined = _reset_blocks(lined, seed, counted, valid, positions)
    current = lined
    norm = failure.metadata.get("norm", "linf")
    summary = (minimized_summary(failure.inputs, current, seed)
               if any(not torch.equal(a, b) for a, b in zip(current, failure.inputs)) else
               f"{UNCHANGED} no value moved toward the seed without losing the failure "
               f"({counted.candidates:,} candidates, {time.monotonic() - started:.1f} s)")
    metadata = {**failure.metadata, "distance": f"{input_distance(current, seed, norm):.6g}",
                "minimized": summary}
    return replace(failure, inputs=current, metadata=metadata, path=None)


#: How a reproducer's "minimized" note starts when minimizing changed nothing.
UNCHANGED = "unchanged:"
#: Single values tried before delta debugging when the line from the seed moved nothing
#: (integer inputs, or a failure no point of the line keeps): when not one of them can go
#: back to the seed's without losing the failure, every value matters (a flat image, a
#: constant signal) and the blocks, which reset several at once, are not tried (thousands
#: of candidates for nothing: ~10 s on a 3x32x32 image). Where the line moved, the input
#: sits at the failure's edge, where single values often cannot go back but some blocks
#: can (a disagreement at a decision boundary): delta debugging runs as it is.
SINGLE_PROBES = 32


class _Counted:
    """A check that counts the candidates it was asked about."""

    def __init__(self, check: Check) -> None:
        self.check, self.candidates = check, 0

    def __call__(self, batch: Inputs) -> torch.Tensor:
        self.candidates += batch[0].shape[0]
        return self.check(batch)


def _some_value_can_go_back(current: Inputs, seed: Inputs, still_fails: Check,
                            valid: Callable[[Inputs], Inputs], positions: list[int]) -> bool:
    """Whether resetting one differing value (of SINGLE_PROBES spread over the input) to the
    seed's keeps the failure; True when there are too few values to be worth the probe."""
    differing = [(p, i) for p in positions
                 for i in (current[p].reshape(-1) != seed[p].reshape(-1)).nonzero().flatten().tolist()]
    if len(differing) <= SINGLE_PROBES:
        return True
    step = len(differing) / SINGLE_PROBES
    candidates = []
    for position, index in (differing[int(k * step)] for k in range(SINGLE_PROBES)):
        flat = current[position].reshape(-1).clone()
        flat[index] = seed[position].reshape(-1)[index]
        candidates.append(valid(tuple(flat.view_as(t) if p == position else t
                                      for p, t in enumerate(current))))
    return bool(still_fails(_batch(candidates)).any())


def minimized_summary(before: Inputs, after: Inputs, seed: Inputs) -> str:
    """How far from the seed, before and after: L-inf, L2 and values that differ."""
    parts = [f"{norm} {input_distance(before, seed, norm):.4g} -> "
             f"{input_distance(after, seed, norm):.4g}" for norm in ("linf", "l2")]
    parts.append(f"changed values {changed_values(before, seed)} -> {changed_values(after, seed)}")
    return ", ".join(parts)


def is_smaller(smaller: Failure, original: Failure) -> bool:
    """A strict improvement: minimizing only moves values toward the seed, so any change is one."""
    return any(not torch.equal(a, b) for a, b in zip(smaller.inputs, original.inputs))


def _along_the_line(current: Inputs, seed: Inputs, still_fails: Check) -> Inputs:
    """Bisect t in [0, 1] for the smallest seed + t * (input - seed) that still fails."""
    floats = [i for i, t in enumerate(current) if t.dtype.is_floating_point]
    if not floats:
        return current

    def at(fraction: float) -> Inputs:
        return tuple(s + fraction * (c - s) if i in floats else c
                     for i, (c, s) in enumerate(zip(current, seed)))

    low, high = 0.0, 1.0  # low: passes (the seed passes), high: fails
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if bool(still_fails(_batch([at(middle)]))[0]):
            high = middle
        else:
            low = middle
    return at(high) if high < 1.0 else current


def _until(deadline: Deadline, still_fails: Check) -> Check:
    """The check, answering "passes" for every candidate once the deadline has passed: no
    candidate is taken after it, and the loops end at their next step."""
    if deadline.at is None:
        return still_fails

    def check(batch: Inputs) -> torch.Tensor:
        if deadline.passed():
            return torch.zeros(batch[0].shape[0], dtype=torch.bool)
        return still_fails(batch)

    return check


def _valid_under(domain: Domain | None) -> Callable[[Inputs], Inputs]:
    """One input (no batch dimension) as the domain keeps it: masks recomputed."""
    if domain is None:
        return lambda inputs: inputs
    return lambda inputs: tuple(t[0] for t in domain.normalize(tuple(t.unsqueeze(0) for t in inputs)))


def _reset_blocks(current: Inputs, seed: Inputs, still_fails: Check,
                  valid: Callable[[Inputs], Inputs], positions: list[int]) -> Inputs:
    """Delta debugging: reset ever smaller blocks of differing values to the seed's."""
    budget = MAX_CANDIDATES
    for position in positions:
        flat, flat_seed = current[position].reshape(-1), seed[position].reshape(-1)
        size = max(1, flat.numel() // 2)
        while size >= 1 and budget > 0:
            changed = True
            while changed and budget > 0:
                changed = False
                differing = (flat != flat_seed).nonzero().flatten()
                blocks = [differing[i:i + size] for i in range(0, len(differing), size)]
                for start in range(0, len(blocks), BATCH):
                    chunk = blocks[start:start + BATCH]
                    candidates = []
                    for block in chunk:
                        candidate = flat.clone()
                        candidate[block] = flat_seed[block]
                        candidates.append(valid(tuple(candidate.view_as(t) if i == position else t
                                                      for i, t in enumerate(current))))
                    budget -= len(candidates)
                    passing = still_fails(_batch(candidates)).nonzero().flatten()
                    if len(passing):
                        flat = candidates[int(passing[0])][position].reshape(-1)
                        current = candidates[int(passing[0])]
                        changed = True
                        break
            size //= 2
    return current


def _batch(candidates: list[Inputs]) -> Inputs:
    return tuple(torch.stack(column) for column in zip(*candidates))


def changed_values(inputs: Inputs, seed: Inputs) -> int:
    return int(sum((t != s).sum() for t, s in zip(inputs, seed)))
