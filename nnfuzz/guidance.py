"""Guidance: which objectives steer the search, and where a gradient step goes.

A guided mutation follows a gradient (nnfuzz.mutation's ``guided`` operator).
Half the time, when a guiding objective has a steering quantity (disagree's
top-two margin), it steps down that quantity's gradient; otherwise it pushes
one module statistic that still has finite records further toward an extreme,
chosen at random, up or down. A descent walk (nnfuzz.descent) follows one
:class:`Push` for many steps: a signal column (a module statistic, or a
guiding objective's pressure) and the way toward failing. Which objectives
guide is decided once, at set-up: each objective's measured default, unless
``objective_guidance`` says all or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from nnfuzz.coverage import SignalLayout
from nnfuzz.domain import Inputs
from nnfuzz.execution import Executor, statistic
from nnfuzz.objectives import Objective

Directions = tuple[torch.Tensor | None, ...]


def guiding(objectives: list[Objective], setting: bool | None) -> list[Objective]:
    """The objectives whose pressure and steering guide the search: their own default
    (``guides_by_default``, set where it was measured to help), or all / none."""
    return [o for o in objectives if (o.guides_by_default if setting is None else setting)]


@dataclass(frozen=True)
class Push:
    """One signal column (SignalLayout) pushed toward an extreme: down (``lower``) or up.
    An objective's pressure is only ever pushed down, toward failing."""

    column: int
    lower: bool


class Guidance:
    """The direction of a guided mutation for a batch of inputs, or None (no gradient)."""

    def __init__(self, executor: Executor, guides: list[Objective], layout: SignalLayout,
                 record_targets: Callable[[], torch.Tensor]) -> None:
        """``record_targets``: the signal columns whose records are finite (Records.targets)."""
        self.executor, self.layout, self.record_targets = executor, layout, record_targets
        self.steering = [s for s in (o.steer() for o in guides) if s is not None]
        #: Each guide's differentiable first pressure column, by its column in the layout.
        self.pressures: dict[int, Callable[..., torch.Tensor]] = {}
        column = layout.statistics
        for objective in guides:
            quantity = objective.descent()
            if quantity is not None:
                self.pressures[column] = quantity
            column += objective.pressure_columns

    def __call__(self, inputs: Inputs, rng: torch.Generator) -> Directions | None:
        if self.steering and _coin(rng):
            pick = int(torch.randint(len(self.steering), (1,), generator=rng,
                                     device=rng.device).item())
            grads = self.executor.gradient(inputs, self.steering[pick])
            return None if grads is None else _negated(grads)
        push = self._statistic_push(rng)
        return None if push is None else self.direction(inputs, [push])

    def draw(self, rng: torch.Generator) -> Push | None:
        """What a descent walk pushes: half the time (when a guide has one) a guiding
        objective's pressure, else a module statistic as a guided mutation draws it."""
        if self.pressures and _coin(rng):
            columns = list(self.pressures)
            pick = int(torch.randint(len(columns), (1,), generator=rng, device=rng.device).item())
            return Push(columns[pick], lower=True)
        return self._statistic_push(rng)

    def direction(self, inputs: Inputs, pushes: Sequence[Push],
                  labels: torch.Tensor | None = None) -> Directions | None:
        """The gradient that moves each example's push its way, w.r.t. each float input:
        example ``r`` follows ``pushes[r % len(pushes)]``; all in one gradient pass.
        ``labels``: each example's, for a pressure that needs them (the loss)."""
        statistics = [self.layout.statistic(push.column) for push in pushes]
        modules = tuple(sorted({s[0] for s in statistics if s is not None}))
        whole = any(s is None for s in statistics)
        follows = torch.arange(inputs[0].shape[0], device=inputs[0].device) % len(pushes)

        def ascent(outputs: dict[int, torch.Tensor], output: object) -> torch.Tensor:
            """What the pushes raise, per example: minus the value of those pushed down."""
            total = torch.zeros(len(follows), device=follows.device)
            for which, (push, stat) in enumerate(zip(pushes, statistics)):
                value = (self.pressures[push.column](output, labels) if stat is None
                         else statistic(outputs[stat[0]], stat[1]))
                mine = (follows == which).to(value.device)
                total = total + torch.where(mine, -value if push.lower else value, 0.0)
            return total

        return self.executor.gradient_of(inputs, ascent, modules, whole=whole)

    def _statistic_push(self, rng: torch.Generator) -> Push | None:
        """A module statistic that still has finite records, at random, up or down."""
        candidates = self.record_targets()
        candidates = candidates[candidates < self.layout.statistics]
        if not len(candidates):
            return None
        pick = int(candidates[torch.randint(len(candidates), (1,), generator=rng,
                                            device=rng.device).item()])
        return Push(pick, lower=_coin(rng))


def _coin(rng: torch.Generator) -> bool:
    return bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5)


def _negated(grads: Directions) -> Directions:
    return tuple(-g if g is not None else g for g in grads)
