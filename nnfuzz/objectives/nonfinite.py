"""``nonfinite``: NaN or Inf in the model's output or in any module's output."""

from __future__ import annotations

import torch

from nnfuzz.execution import Execution
from nnfuzz.objectives.base import Finding, Judgement, Objective


class Nonfinite(Objective):
    """NaN or Inf in any output or in any module's output."""

    name = "nonfinite"

    def evaluate(self, execution: Execution) -> Judgement:
        if _all_finite(execution):
            return Judgement([])  # the common case: no row masks to build, one read per tensor
        bad = ~torch.isfinite(execution.event_absmax).all(1)
        if execution.judged_plainly:  # the instrumented pass computes something else
            bad = torch.zeros_like(bad)
        for tensor in execution.outputs:
            bad |= ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(1)
        bad &= execution.ran
        return Judgement([self._describe(execution, int(example))
                          for example in bad.nonzero().flatten()])

    def _describe(self, execution: Execution, example: int) -> Finding:
        module = execution.first_nonfinite_module(example)
        if module is not None:
            position = execution.event_modules.index(module)
            kind = "NaN" if torch.isnan(execution.event_absmax[example, position]) else "Inf"
            caller = execution.callers.get(module, "")
            before = (f"; it may come from code that runs before it in the forward() of "
                      f"{repr(caller) if caller else 'the model'}" if module != "(model)" else "")
            return self.finding(example, f"{kind} in the output of module {module!r} (the first "
                                         f"non-finite module in forward order{before})", module)
        rows = torch.cat([t[example].reshape(-1).float() for t in execution.outputs])
        kind = "NaN" if torch.isnan(rows).any() else "Inf"
        return self.finding(example, f"{kind} in the model's output (after its last module)",
                            "output")


def _all_finite(execution: Execution) -> bool:
    """Whether nothing this objective judges holds a NaN or Inf: the module outputs' largest
    magnitudes (unless the outputs come from a plain pass) and the model's outputs."""
    judged = [*([] if execution.judged_plainly else [execution.event_absmax]), *execution.outputs]
    return all(bool(torch.isfinite(tensor).all()) for tensor in judged)
