"""Guidance: which objectives steer the search, and where a gradient step goes.

A guided mutation follows a gradient (nnfuzz.mutation's ``guided`` operator).
Half the time, when a guiding objective has a steering quantity (disagree's
top-two margin), it steps down that quantity's gradient; otherwise it pushes
one module statistic that still has finite records further toward an extreme,
chosen at random, up or down. A descent walk (nnfuzz.descent) follows one
:class:`Push` for many steps: a signal column (a module statistic, or a
guiding objective's pressure) and the way toward failing. Which objectives
guide is decided once, at set-up: each objective's measured default, unless
``objective_guidance`` says all or none. The gradients come from a watched
forward pass of the executor (:func:`gradient_of`), which stops as soon as the
module outputs it needs are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from nnfuzz.coverage import SignalLayout
from nnfuzz.domain import Inputs
from nnfuzz.execution import Executor
from nnfuzz.objectives import Objective
from nnfuzz.reading import primary_output

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
        """``record_targets``: the signal columns whose records are finite (Records.finite_columns)."""
        self.executor, self.layout, self.record_targets = executor, layout, record_targets
        self._targets: torch.Tensor | None = None  # see _statistic_columns
        self._columns: list[int] = []
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
            grads = gradient(self.executor, inputs, self.steering[pick])
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

        def raised(push: Push, stat: tuple[int, int] | None, outputs: dict[int, torch.Tensor],
                   output: object) -> torch.Tensor:
            """What one push raises, per example: minus the value when it is pushed down."""
            value = (self.pressures[push.column](output, labels) if stat is None
                     else statistic(outputs[stat[0]], stat[1]))
            return -value if push.lower else value

        def ascent(outputs: dict[int, torch.Tensor], output: object) -> torch.Tensor:
            """What the pushes raise, per example, each example its own push's."""
            if len(pushes) == 1:  # every example follows it: no masks to sum (the same gradient)
                return raised(pushes[0], statistics[0], outputs, output)
            follows = torch.arange(inputs[0].shape[0], device=inputs[0].device) % len(pushes)
            total = torch.zeros(len(follows), device=follows.device)
            for which, (push, stat) in enumerate(zip(pushes, statistics)):
                value = raised(push, stat, outputs, output)
                total = total + torch.where((follows == which).to(value.device), value, 0.0)
            return total

        return gradient_of(self.executor, inputs, ascent, modules, whole=whole)

    def _statistic_push(self, rng: torch.Generator) -> Push | None:
        """A module statistic that still has finite records, at random, up or down."""
        candidates = self._statistic_columns()
        if not candidates:
            return None
        pick = candidates[int(torch.randint(len(candidates), (1,), generator=rng,
                                            device=rng.device).item())]
        return Push(pick, lower=_coin(rng))

    def _statistic_columns(self) -> list[int]:
        """The module statistics among record_targets(), read to the host again only when
        that gives another tensor (Records makes a new one when its records change)."""
        targets = self.record_targets()
        if targets is not self._targets:
            self._targets = targets
            self._columns = targets[targets < self.layout.statistics].tolist()
        return self._columns


def _coin(rng: torch.Generator) -> bool:
    return bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5)


def _negated(grads: Directions) -> Directions:
    return tuple(-g if g is not None else g for g in grads)


# --- gradients ---------------------------------------------------------------------


def gradient(executor: Executor, inputs: Inputs,
             measure: Callable[[torch.Tensor], torch.Tensor]) -> Directions | None:
    """Gradient of ``measure`` of the primary output (per example, summed over the batch)
    w.r.t. float inputs; None when the model is not differentiable there."""
    return gradient_of(executor, inputs, lambda _, output: measure(primary_output(output)), (),
                       whole=True)


def gradient_of(executor: Executor, inputs: Inputs,
                measure: Callable[[dict[int, torch.Tensor], Any], torch.Tensor],
                modules: tuple[int, ...], whole: bool = False) -> Directions | None:
    """Gradient of ``measure(module outputs by index, the model's output)``, summed over
    the batch, w.r.t. float inputs. The forward pass stops once the ``modules`` ran
    unless ``whole`` (the model's output is then given, else None). None when the
    model is not differentiable there."""
    leaves = tuple(t.detach().clone().requires_grad_(t.dtype.is_floating_point)
                   for t in inputs)
    capture = _Capture(modules, stop=not whole)
    try:
        with torch.enable_grad():
            try:
                output = executor.watched(leaves, capture)
            except _StopForward:
                output = None
            if any(o is None or not o.requires_grad for o in capture.outputs.values()):
                return None
            primary = primary_output(output) if whole else None
            if whole and (primary is None or not primary.requires_grad):
                return None
            value = measure(capture.outputs, output)  # type: ignore[arg-type]
            grads = torch.autograd.grad(value.sum(), [t for t in leaves if t.requires_grad],
                                        allow_unused=True)
    except Exception:  # noqa: BLE001 - not differentiable here: the caller falls back
        return None
    grads_iter = iter(grads)
    return tuple(next(grads_iter) if t.requires_grad else None for t in leaves)


class _Capture:
    """Keeps the first output rows of the chosen modules during a watched pass; when
    ``stop``, ends the pass once it has them all, since what the model computes after
    them does not matter to the gradient."""

    def __init__(self, modules: tuple[int, ...], stop: bool) -> None:
        self.outputs: dict[int, torch.Tensor | None] = {index: None for index in modules}
        self.stop = stop

    def __call__(self, index: int, rows: torch.Tensor) -> None:
        if index in self.outputs and self.outputs[index] is None:
            self.outputs[index] = rows
            if self.stop and all(o is not None for o in self.outputs.values()):
                raise _StopForward


class _StopForward(Exception):
    """Raised by the capture once a gradient pass has the module outputs it needs."""


def statistic(activation: torch.Tensor, stat: int) -> torch.Tensor:
    """One of STATS per example of a module's output (B, ...), differentiably: what a
    guided step pushes."""
    flat = activation.flatten(1).float()
    if stat == 0:  # only the one pushed: each is a pass over the activations, and its backward
        return flat.mean(1)
    if stat == 1:
        return flat.std(1, correction=0)
    return flat.abs().amax(1)
