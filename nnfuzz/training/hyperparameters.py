"""``HYPERPARAMETERS``: the ranges a target lets ``nnfuzz train`` choose from (the README's
*Training*), checked once against the optimizer they set, drawn per trajectory, applied to
a copy's optimizer. A name is ``batch_size`` or a key of the optimizer's parameter groups
(``lr``, ``weight_decay``, ``momentum``, ...): anything else could not change how it trains."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from nnfuzz.errors import TargetError
from nnfuzz.training.trajectory import Hyper

#: The ranges as checked: name -> (low, high).
Ranges = dict[str, tuple[float, float]]

EXAMPLE = '{"lr": (1e-4, 1e-1), "batch_size": (8, 64), "weight_decay": (0, 1e-2)}'


def checked_ranges(given: Any, origin: str, optimizer: torch.optim.Optimizer) -> Ranges:
    """``HYPERPARAMETERS`` as ranges; a TargetError saying what to write when it is not a
    mapping of a known name to (low, high) with low <= high, finite (and an lr and a
    batch_size above 0)."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TargetError(f"{origin}: HYPERPARAMETERS is {type(given).__name__}: give a dict "
                          f"of name -> (low, high), e.g. {EXAMPLE}.")
    known = ["batch_size"] + sorted(k for k, v in optimizer.param_groups[0].items()
                                    if isinstance(v, (int, float)) and not isinstance(v, bool))
    ranges: Ranges = {}
    for name, bounds in given.items():
        if name not in known:
            raise TargetError(f"{origin}: HYPERPARAMETERS names {name!r}, which neither the "
                              f"batch nor the optimizer ({type(optimizer).__name__}) has: use "
                              f"{', '.join(known)}.")
        try:
            low, high = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise TargetError(f"{origin}: HYPERPARAMETERS[{name!r}] is {bounds!r}: give "
                              "(low, high), two numbers.") from None
        floor = 1 if name == "batch_size" else 0
        if not (math.isfinite(low) and math.isfinite(high) and low <= high) or \
                (name in ("lr", "batch_size") and low < floor) or (name == "lr" and low == 0):
            raise TargetError(f"{origin}: HYPERPARAMETERS[{name!r}] = ({low:g}, {high:g}) is not "
                              "a range: give finite low <= high" +
                              (", above 0" if name in ("lr", "batch_size") else "") + ".")
        ranges[name] = (low, high)
    return ranges


def defaults(ranges: Ranges, optimizer: torch.optim.Optimizer, batch_size: int) -> Hyper:
    """The values the target trains with when the search chooses none: the optimizer's own
    and --batch-size."""
    values = {name: float(batch_size if name == "batch_size" else optimizer.param_groups[0][name])
              for name in ranges}
    return tuple(sorted(values.items()))


def searched(target_hyperparameters: Any, origin: str, optimizer: torch.optim.Optimizer,
             batch_size: int) -> tuple[Ranges, Hyper]:
    """The ranges the search may draw from and the defaults it starts at, for the engine and
    the minimizer alike."""
    ranges = checked_ranges(target_hyperparameters, origin, optimizer)
    return ranges, defaults(ranges, optimizer, batch_size)


def draw(ranges: Ranges, generator: torch.Generator) -> Hyper:
    """One value per range: log-uniform where the range spans a decade or more above 0 (a
    learning rate), uniform otherwise; a batch size rounded to a whole number."""
    values = {}
    for name, (low, high) in sorted(ranges.items()):
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        if low > 0 and high >= 10 * low:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        values[name] = float(round(value)) if name == "batch_size" else value
    return tuple(sorted(values.items()))


def apply(optimizer: torch.optim.Optimizer, values: dict[str, float]) -> None:
    """Set the values on every parameter group (a batch size is the engine's, not the
    optimizer's)."""
    for group in optimizer.param_groups:
        for name, value in values.items():
            if name != "batch_size":
                group[name] = value


def batch_size(values: dict[str, float], default: int) -> int:
    return int(values.get("batch_size", default))
