"""The target's own ``objectives()``: callables ``(inputs, output) -> BoolTensor (N,)``."""

from __future__ import annotations

from typing import Callable

import torch

from nnfuzz.domain import Names, arguments
from nnfuzz.errors import TargetError, first_line, user_traceback
from nnfuzz.execution import Execution
from nnfuzz.objectives.base import Finding, Judgement, Objective


class UserObjective(Objective):
    """A callable ``(inputs, output) -> BoolTensor (N,)`` from the target's ``objectives()``:
    ``inputs`` as the model takes them (a tuple, or a dict by name), ``output`` as it returned it."""

    def __init__(self, check: Callable[..., torch.Tensor], origin: str, names: Names = None) -> None:
        self.check = check
        self.name = check.__name__  # type: ignore[misc]
        self.origin = origin
        self.names = names

    def evaluate(self, execution: Execution) -> Judgement:
        try:
            verdict = self.check(arguments(execution.inputs, self.names), execution.output)
        except Exception as error:  # noqa: BLE001 - the target's bug, reported once
            raise TargetError(f"{self.origin}: objective {self.name} raised "
                              f"{type(error).__name__}: {first_line(error)}: fix the objective; "
                              "it must return a BoolTensor (N,) for any valid input.",
                              context=user_traceback(error)) from None
        if (not isinstance(verdict, torch.Tensor) or verdict.shape != (execution.size,)
                or verdict.dtype not in (torch.bool, torch.uint8)):
            what = (f"a tensor of shape {tuple(verdict.shape)} and dtype {verdict.dtype}"
                    if isinstance(verdict, torch.Tensor) else type(verdict).__name__)
            raise TargetError(f"{self.origin}: objective {self.name} returned {what}: return a "
                              f"BoolTensor of shape ({execution.size},), True where an example fails.")
        failing = verdict.bool().to(execution.ran.device) & execution.ran
        return Judgement([Finding(int(example), self.name, f"objective {self.name} returned True",
                                  self.name) for example in failing.nonzero().flatten()])
