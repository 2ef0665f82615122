"""Guidance: which objectives steer the search, and where a guided mutation steps.

A guided mutation follows a gradient (nnfuzz.mutation's ``guided`` operator).
Half the time, when a guiding objective has a steering quantity (disagree's
top-two margin), it steps down that quantity's gradient; otherwise it pushes
one module statistic that still has finite records further toward an extreme,
chosen at random, up or down. Which objectives guide is decided once, at
set-up: each objective's measured default, unless ``objective_guidance`` says
all or none.
"""

from __future__ import annotations

from typing import Callable

import torch

from nnfuzz.coverage import SignalLayout
from nnfuzz.domain import Inputs
from nnfuzz.execution import Executor
from nnfuzz.objectives import Objective

Directions = tuple[torch.Tensor | None, ...]


def guiding(objectives: list[Objective], setting: bool | None) -> list[Objective]:
    """The objectives whose pressure and steering guide the search: their own default
    (``guides_by_default``, set where it was measured to help), or all / none."""
    return [o for o in objectives if (o.guides_by_default if setting is None else setting)]


class Guidance:
    """The direction of a guided mutation for a batch of inputs, or None (no gradient)."""

    def __init__(self, executor: Executor, guides: list[Objective], layout: SignalLayout,
                 record_targets: Callable[[], torch.Tensor]) -> None:
        """``record_targets``: the signal columns whose records are finite (Records.targets)."""
        self.executor, self.layout, self.record_targets = executor, layout, record_targets
        self.steering = [s for s in (o.steer() for o in guides) if s is not None]

    def __call__(self, inputs: Inputs, rng: torch.Generator) -> Directions | None:
        if self.steering and _coin(rng):
            pick = int(torch.randint(len(self.steering), (1,), generator=rng,
                                     device=rng.device).item())
            grads = self.executor.gradient(inputs, self.steering[pick])
            return None if grads is None else _negated(grads)
        return self._toward_an_extreme(inputs, rng)

    def _toward_an_extreme(self, inputs: Inputs, rng: torch.Generator) -> Directions | None:
        candidates = self.record_targets()
        candidates = candidates[candidates < self.layout.statistics]
        if not len(candidates):
            return None
        pick = int(candidates[torch.randint(len(candidates), (1,), generator=rng,
                                            device=rng.device).item()])
        module, stat = self.layout.statistic(pick)  # type: ignore[misc]
        lower = _coin(rng)
        grads = self.executor.stat_gradient(inputs, module, stat)
        if grads is None:
            return None
        return _negated(grads) if lower else grads


def _coin(rng: torch.Generator) -> bool:
    return bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5)


def _negated(grads: Directions) -> Directions:
    return tuple(-g if g is not None else g for g in grads)
