"""``nnfuzz minimize`` for a training reproducer: the shortest, least perturbed trajectory,
nearest the target's default hyperparameters, that still breaks the same way.

A trajectory found by ``nnfuzz train`` carries whatever the search did on its way: steps
that did not matter, batches moved or relabelled for nothing, moves larger than needed,
hyperparameters drawn far from the target's own. A bug report needs only what breaks it.
Like the input minimizer (nnfuzz.minimizer) and delta debugging, this re-trains candidate
trajectories from the starting weights (``train_along``) and keeps one only when some step
of it still breaks with the reproducer's signature; a kept one is cut after that step. The
passes (fewer steps, fewer perturbed examples, smaller moves, hyperparameters back toward
their defaults) repeat until a round changes nothing, or the budget of re-trainings is
spent. Candidates are tried in a fixed order and training along one is deterministic: the
same reproducer gives the same minimized one.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from nnfuzz.errors import TargetError, UsageError, first_line
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target
from nnfuzz.training import hyperparameters
from nnfuzz.training.objectives import Broken
from nnfuzz.training.replay import (retrain, saved_start, starting_target, train_along,
                                   trajectory_failure, trajectory_of)
from nnfuzz.training.setup import TrainConfig, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Hyper, Step, Trajectory

#: Re-trainings tried in all, at most: each trains up to the whole trajectory again (on
#: examples/train_bce.py, a few milliseconds a step), so minimizing stays a matter of seconds.
BUDGET = 400
#: Rounds of every pass, at most: a hyperparameter that can only go halfway each round
#: would otherwise take the whole budget.
ROUNDS = 8
#: Times a step's moves are halved, at most (1/16 of the move is as good as none).
HALVINGS = 4


class _Search:
    """The smallest trajectory found so far, the Broken it gives, and the re-trainings spent."""

    def __init__(self, target: Target, config: TrainConfig, trajectory: Trajectory,
                 broken: Broken) -> None:
        self.target, self.config = target, config
        self.trajectory, self.broken = trajectory.prefix(broken.step), broken
        self.spent = self.kept = 0

    def keeps(self, candidate: Trajectory) -> bool:
        """Train along ``candidate``: where it breaks with the same signature, it becomes the
        current trajectory (cut after the step that broke). False once the budget is spent."""
        if self.spent >= BUDGET:
            return False
        self.spent += 1
        try:
            broken = train_along(self.target, candidate, self.config)
        except TargetError:  # the target raised on the candidate: another failure, not this one
            return False
        if broken is None or broken.signature != self.broken.signature:
            return False
        self.trajectory, self.broken = candidate.prefix(broken.step), broken
        self.kept += 1
        return True

    def keeps_step(self, number: int, step: Step) -> bool:
        steps = list(self.trajectory.steps)
        steps[number] = _tidy(step)
        return self.keeps(replace(self.trajectory, steps=tuple(steps)))


def minimize_trajectory(target: Target, failure: Failure) -> Failure:
    """``failure`` (a training reproducer) with the smallest trajectory that still breaks as
    its signature says; a UsageError when it no longer breaks so (nothing to minimize)."""
    started = time.monotonic()
    target = starting_target(target, failure)
    try:
        broken = retrain(target, failure)  # also checks the starting weights are the same
    except (IndexError, RuntimeError) as error:
        raise UsageError(f"{failure.path}: its trajectory no longer fits the target's training "
                         f"data or model: {first_line(error)}") from None
    if broken is None or broken.signature != failure.signature:
        raise UsageError(f"{failure.path or 'the failure'}: it no longer fails as "
                         f"{failure.signature!r}: nothing to minimize (replay it to see what "
                         "it does now).")
    data = training_set(target)
    config = TrainConfig.from_metadata(failure.metadata, str(failure.path))
    original = trajectory_of(failure, len(data.inputs))
    state = TrainingState(target, data, config)  # its optimizer's values are the defaults
    _, defaults = hyperparameters.searched(target.hyperparameters, target.origin, state.optimizer,
                                           config.batch_size)
    search = _Search(target, config, original, broken)
    for _ in range(ROUNDS):
        kept = search.kept
        _fewer_steps(search)
        _fewer_perturbed(search)
        _smaller_moves(search)
        _toward_defaults(search, defaults)
        if search.kept == kept or search.spent >= BUDGET:
            break
    after = search.trajectory
    spent = f"{search.spent} re-trainings, {time.monotonic() - started:.1f} s"
    note = (f"{_summary(original, after, defaults)} ({spent})" if not _same(original, after) else
            "unchanged: no step, move, label or hyperparameter could go without losing the "
            f"failure ({spent})")
    # The failing step's batch depends on the data alone, not on the weights: any state gives it.
    return trajectory_failure(search.broken, state, after, {**failure.metadata, "minimized": note},
                              saved_start(failure))


def _fewer_steps(search: _Search) -> None:
    """Delta debugging over the steps before the one that breaks (that one must stay: the
    steps before it were judged and did not break): drop chunks of half of them, then of a
    quarter, down to single steps, from the front, wherever the rest still breaks."""
    size = max(1, (len(search.trajectory) - 1) // 2)
    while size >= 1:
        start = 0
        while start < len(search.trajectory) - 1:
            steps = search.trajectory.steps
            end = min(start + size, len(steps) - 1)
            if not search.keeps(replace(search.trajectory, steps=steps[:start] + steps[end:])):
                start = end
        size //= 2


def _fewer_perturbed(search: _Search) -> None:
    """Per step, delta debugging over its moved examples, then over those trained on another
    example's label: all of them restored at once (the step unperturbed), then blocks of
    half of them, down to one."""
    for number in range(len(search.trajectory)):
        for which in ("moved", "relabelled"):
            size = len(_perturbed(search.trajectory, number, which))
            while size >= 1:
                start = 0
                while start < len(examples := _perturbed(search.trajectory, number, which)):
                    step = search.trajectory.steps[number]
                    if not search.keeps_step(number, _restored(step, examples[start:start + size],
                                                               which)):
                        start += size
                size //= 2


def _step(search: _Search, number: int) -> Step | None:
    """Step ``number`` of the current trajectory; None once a kept candidate cut it off."""
    return search.trajectory.steps[number] if number < len(search.trajectory) else None


def _perturbed(trajectory: Trajectory, number: int, which: str) -> torch.Tensor:
    """The batch rows of step ``number`` that are moved (``which="moved"``) or trained on
    another example's label; none when the trajectory has been cut before that step."""
    if number >= len(trajectory):
        return torch.zeros(0, dtype=torch.long)
    step = trajectory.steps[number]
    if which == "moved":
        rows = torch.zeros(len(step.indices), dtype=torch.bool)
        for delta in step.deltas:
            if delta is not None:
                rows |= delta.reshape(len(step.indices), -1).ne(0).any(1)
    else:
        rows = step.labels != step.indices if step.labels is not None else \
            torch.zeros(len(step.indices), dtype=torch.bool)
    return rows.nonzero().flatten()


def _restored(step: Step, rows: torch.Tensor, which: str) -> Step:
    if which == "moved":
        deltas = tuple(None if d is None else d.index_fill(0, rows, 0) for d in step.deltas)
        return replace(step, deltas=deltas)
    assert step.labels is not None
    return replace(step, labels=step.labels.index_copy(0, rows, step.indices[rows]))


def _smaller_moves(search: _Search) -> None:
    """Each step's remaining moves halved, while the trajectory still breaks."""
    for number in range(len(search.trajectory)):
        for _ in range(HALVINGS):
            step = _step(search, number)
            if step is None or not step.moved or not search.keeps_step(number, replace(
                    step, deltas=tuple(None if d is None else d * 0.5 for d in step.deltas))):
                break


def _toward_defaults(search: _Search, defaults: Hyper) -> None:
    """Each hyperparameter at its default, else halfway there (geometrically for the
    learning rate, which spans decades)."""
    for name, default in defaults:
        value = search.trajectory.values.get(name)
        if value is None or value == default:
            continue
        if _try_value(search, name, default):
            continue
        halfway = math.sqrt(value * default) if name == "lr" and value > 0 and default > 0 \
            else (value + default) / 2
        _try_value(search, name, float(round(halfway)) if name == "batch_size" else halfway)


def _try_value(search: _Search, name: str, value: float) -> bool:
    """Whether the trajectory with ``name`` at ``value`` still breaks. A smaller batch size
    keeps each batch's first examples; a larger one cannot be tried (it would have to
    invent examples the search never chose), nor one that changes nothing."""
    trajectory = search.trajectory
    now = trajectory.values[name]
    if value == now or (name == "batch_size" and value > now):
        return False
    steps = trajectory.steps
    if name == "batch_size":
        size = int(value)
        steps = tuple(_tidy(Step(s.indices[:size], tuple(None if d is None else d[:size]
                                                        for d in s.deltas),
                                 None if s.labels is None else s.labels[:size])) for s in steps)
    values = {**trajectory.values, name: value}
    return search.keeps(replace(trajectory, steps=steps,
                                hyperparameters=tuple(sorted(values.items()))))


def _tidy(step: Step) -> Step:
    """The step as the engine would have written it: a move of zeros is no move, labels
    that are the examples' own are no label noise."""
    deltas = tuple(None if d is None or not bool(d.ne(0).any()) else d for d in step.deltas)
    return replace(step, deltas=deltas, labels=step.labels if step.relabelled else None)


def _same(a: Trajectory, b: Trajectory) -> bool:
    def equal(x: torch.Tensor | None, y: torch.Tensor | None) -> bool:
        return x is y if x is None or y is None else torch.equal(x, y)

    return (a.seed, a.hyperparameters, len(a)) == (b.seed, b.hyperparameters, len(b)) and all(
        equal(s.indices, t.indices) and equal(s.labels, t.labels) and
        all(equal(d, e) for d, e in zip(s.deltas, t.deltas)) for s, t in zip(a.steps, b.steps))


def _summary(before: Trajectory, after: Trajectory, defaults: Hyper) -> str:
    """What minimizing took away: steps, perturbed steps, moved and relabelled examples, the
    largest move, hyperparameters off their defaults."""
    def counts(t: Trajectory) -> tuple[int, int, int, int, float, int]:
        moved = sum(len(_perturbed(t, n, "moved")) for n in range(len(t)))
        relabelled = sum(len(_perturbed(t, n, "relabelled")) for n in range(len(t)))
        largest = max((float(d.abs().max()) for s in t.steps for d in s.deltas
                       if d is not None and d.numel()), default=0.0)
        off = sum(t.values.get(name, default) != default for name, default in defaults)
        return len(t), sum(s.perturbed for s in t.steps), moved, relabelled, largest, off

    names = ("steps", "perturbed steps", "moved examples", "relabelled examples",
             "largest move", "hyperparameters off their defaults")[:6 if defaults else 5]
    return ", ".join(f"{name} {a:.3g} -> {b:.3g}" if isinstance(a, float) else f"{name} {a} -> {b}"
                     for name, a, b in zip(names, counts(before), counts(after)))
