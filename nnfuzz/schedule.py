"""Schedule: how many of a batch's rows each mutation operator gets, from what it has yielded.

A bandit over operators, as AFL++'s MOpt schedules its mutators: every
(input, operator) pair of the Mutator is an arm; each batch, each arm's rows
are counted with what they yielded and what they cost, in forward passes:
one for every mutant, plus the guided step's gradient pass (GRADIENT_COST
forward passes per gradient, one gradient per GUIDED_CHILDREN mutants). An
arm's share of the next batch follows its yield per forward pass, against the
run's mean: an arm that yields twice the mean gets twice its base share (the
share it had without a schedule), within [base / SPREAD, base * SPREAD], so
that no operator is ever starved or alone. Counts decay with a half-life of
HALF_LIFE rows, so the shares follow the run as it moves on.

What an arm yields is its mutants that set a record (Coverage.recorded: a
module statistic's new low or high, or an objective's own measure), not every
mutant kept: novelty alone is what crossover makes most of (a mix of two far
corpus elements lands far from both), and shares that followed it needed 1.1x
the executions to find the zoo's bugs without the edge operator (geometric
mean over 14 targets, 15 run seeds), against 0.98x when they follow records,
the pressure toward the extremes where the zoo's numerical bugs lie.

The cost is a model, never a clock: the same target, seed and options give
the same schedule, the same rows and the same findings. The rows are dealt
out with the run's generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Forward passes a gradient pass costs per row it is taken on (issue #29's profile of a
#: small CNN at batch 100: 2.6 ms of guided gradient pass for 25 gradient rows, against
#: 7 ms for the raw forward of 100 rows: about three forward passes a row).
GRADIENT_COST = 3.0
#: How far an arm's share may move from its base share, either way: a quarter of it at the
#: least (an operator that yields nothing for a while is still tried), four times at most.
SPREAD = 4.0
#: Rows after which what an arm yielded counts half (MOpt's pacemaker restarts its swarm;
#: a decay does the same more smoothly): early coverage is easy to find, later it is not.
HALF_LIFE = 5_000
#: The evidence an arm starts with, in forward passes at the run's mean yield: a few rows
#: that happened to be kept do not swing the shares at once.
PRIOR = 200.0


class Schedule:
    """The rows of each arm in a batch, from what each arm has yielded per forward pass."""

    def __init__(self, base: Sequence[float], costs: Sequence[float]) -> None:
        """``base``: each arm's share without a schedule (they sum to one); ``costs``: the
        forward passes one row of each arm costs."""
        self.base = torch.tensor(base, dtype=torch.float64)
        self.base = self.base / self.base.sum()
        self.costs = torch.tensor(costs, dtype=torch.float64)
        self.rows = torch.zeros_like(self.base)
        self.yields = torch.zeros_like(self.base)
        #: Batches observed; none: the shares are the base.
        self.observed = 0

    def observe(self, rows: torch.Tensor, yields: torch.Tensor) -> None:
        """One batch: each arm's rows and how many of them yielded (both (arms,))."""
        decay = 0.5 ** (float(rows.sum()) / HALF_LIFE)
        self.rows = self.rows * decay + rows.double().cpu()
        self.yields = self.yields * decay + yields.double().cpu()
        self.observed += 1

    def shares(self) -> torch.Tensor:
        """Each arm's share of the next batch (arms,), summing to one, each within
        [base / SPREAD, base * SPREAD]."""
        spent = self.rows * self.costs
        if not self.observed or float(self.yields.sum()) <= 0:
            return self.base.clone()
        mean = float(self.yields.sum() / spent.sum())
        rate = (self.yields + PRIOR * mean) / (spent + PRIOR)
        return bounded(self.base * rate / mean, self.base / SPREAD,
                       (self.base * SPREAD).clamp(max=1.0))

    def counts(self, size: int) -> torch.Tensor:
        """Rows (arms,) of each arm in a batch of ``size``: the shares, rounded so that they
        sum to ``size`` (largest remainders first, ties to the lower arm)."""
        exact = self.shares() * size
        counts = exact.floor().long()
        left = size - int(counts.sum())
        if left > 0:
            order = torch.argsort(-(exact - counts), stable=True)
            counts[order[:left]] += 1
        return counts


def bounded(weights: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``weights`` scaled to sum to one, each clipped into [low, high], the clipped mass
    spread over the others in proportion (``low`` must sum to at most one, ``high`` to at
    least one): ``clip(scale * weights, low, high)`` for the one scale at which they sum to
    one. That sum grows piecewise linearly with the scale, bending where a share meets a
    bound, so the scale is solved exactly on the piece where the sum crosses one. (Clipping
    the shares over or under their bounds and spreading the rest in turn could fix every
    share at a bound and leave a sum that is not one: weights (1, 1, 1, 1, 1, 20) summed to
    0.875.)"""
    positive = weights > 0
    bends = torch.cat(((low / weights)[positive], (high / weights)[positive])).sort().values
    sums = (bends[:, None] * weights).clamp(low, high).sum(1)
    after = int(torch.searchsorted(sums, torch.tensor([1.0], dtype=sums.dtype)).clamp(
        max=len(bends) - 1))
    if after == 0:
        scale = float(bends[0])
    else:
        left, right = float(bends[after - 1]), float(bends[after])
        low_sum, high_sum = float(sums[after - 1]), float(sums[after])
        scale = (right if high_sum == low_sum
                 else left + (1.0 - low_sum) * (right - left) / (high_sum - low_sum))
    return (scale * weights).clamp(low, high)
