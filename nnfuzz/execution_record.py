"""What running the model on one batch gave: an :class:`Execution` per batch.

Every judge reads it: the outputs (as returned and as tensors), the coverage
vectors, each module's per-example statistics, the forward order of the
modules with each one's largest magnitude (to name the first non-finite one),
and what each example raised. A batch that raised is rerun one example at a
time; ``joined`` makes those runs one Execution again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch
import torch.utils._pytree as pytree

from nnfuzz.domain import Inputs

#: Per-example statistics kept for each module's output. ``std`` low finds
#: collapsed (dead, constant) layers, ``absmax`` high finds overflow, ``mean``
#: both ways finds saturation.
STATS = ("mean", "std", "absmax")


@dataclass(frozen=True)
class RaisedError:
    """What the model raised on one example, and where in the user's code."""

    type: str
    message: str
    location: str

    def describe(self) -> str:
        return f"{self.type}: {self.message} at {self.location}"


@dataclass(frozen=True)
class Execution:
    """The model's results on one batch; a new one for a change (dataclasses.replace)."""

    inputs: Inputs
    #: The model's output as it returned it (detached); when some examples raised,
    #: the primary output of those that ran, with zero rows for the others.
    output: Any
    #: Every tensor of the model's output with the batch dimension first.
    outputs: list[torch.Tensor]
    #: The primary output (the README's *The target file*) as float32, or None if every example raised.
    primary: torch.Tensor | None
    #: Coverage vectors, float32, shape (B, D).
    coverage: torch.Tensor
    #: Per-module statistics, shape (B, M, len(STATS)); NaN where a module did not run.
    stats: torch.Tensor
    #: Module names of the forward events, in call order, and each event's absmax (B, E).
    event_modules: list[str]
    event_absmax: torch.Tensor
    #: One entry per example: what it raised, or None.
    raised: list[RaisedError | None] = field(default_factory=list)
    #: The label of each example (its seed's), set by the loop when the target has targets().
    labels: torch.Tensor | None = None
    #: Mask (B,) of the examples whose label is known (their seed is known).
    has_label: torch.Tensor | None = None
    #: For each module name, the module whose forward() calls it ("" for the model itself).
    callers: dict[str, str] = field(default_factory=dict)
    #: The outputs come from a plain pass of their own (Executor.judge_plainly): the module
    #: statistics, from the instrumented one, then only name where a NaN showed, never judge.
    judged_plainly: bool = False

    @property
    def size(self) -> int:
        return self.inputs[0].shape[0]

    @cached_property
    def ran(self) -> torch.Tensor:
        """Mask (B,) of the examples that did not raise (made once: the loop and each
        objective ask)."""
        if not self.raised:
            return torch.ones(self.size, dtype=torch.bool, device=self.coverage.device)
        return torch.tensor([error is None for error in self.raised], device=self.coverage.device)

    @property
    def none_ran(self) -> bool:
        """Whether every example raised: known on the host, with no device synchronisation."""
        return bool(self.raised) and all(error is not None for error in self.raised)

    def label_all(self, label: torch.Tensor | None) -> "Execution":
        """This execution with every example given the same label (a reproducer's): replay
        and shrinking run copies of one input, which all carry that input's target."""
        if label is None:
            return self
        device = self.coverage.device
        return replace(self, labels=label.unsqueeze(0).expand(self.size, *label.shape).to(device),
                       has_label=torch.ones(self.size, dtype=torch.bool, device=device))

    def first_nonfinite_module(self, example: int) -> str | None:
        """The first module, in forward order, whose output was NaN or Inf."""
        row = self.event_absmax[example]
        bad = (~torch.isfinite(row)).nonzero()
        return self.event_modules[int(bad[0])] if len(bad) else None


def _stacked_output(results: list[Execution | None], primary: torch.Tensor) -> Any:
    """The per-example outputs joined into one of the model's own structure (a dict stays
    a dict), zeros for the examples that raised; the primary output if they differ."""
    flat = [pytree.tree_flatten(r.output) if r is not None else None for r in results]
    done = [f for f in flat if f is not None]
    leaves, spec = done[0]
    one_row = all(isinstance(leaf, torch.Tensor) and leaf.dim() > 0 and leaf.shape[0] == 1
                  for leaf in leaves)
    if not one_row or any(other != spec for _, other in done):
        return primary
    joined = [torch.cat([f[0][i].detach() if f is not None else torch.zeros_like(leaf)
                         for f in flat]) for i, leaf in enumerate(leaves)]
    return pytree.tree_unflatten(joined, spec)


def joined(inputs: Inputs, results: list[Execution | None],
           raised: list[RaisedError | None], modules: int) -> Execution:
    """One Execution from per-example runs; rows of raising examples are zeros. Where every
    example raised, the statistics of the ``modules`` are NaN (none ran) and there is no
    coverage vector."""
    size = len(results)
    done = [r for r in results if r is not None]
    device = inputs[0].device
    if not done:
        empty = torch.zeros(size, 0, device=device)
        return Execution(inputs, None, [], None, empty,
                         torch.full((size, modules, len(STATS)), float("nan"), device=device),
                         [], empty, raised)
    template = done[0]

    def rows(get: Any) -> torch.Tensor:
        blank = torch.zeros_like(get(template))
        return torch.cat([get(r) if r is not None else blank for r in results])

    count = min(len(r.outputs) for r in done)
    shapes_agree = all(r.event_modules == template.event_modules for r in done)
    primary = rows(lambda r: r.primary)
    return Execution(
        inputs=inputs,
        output=_stacked_output(results, primary),
        judged_plainly=template.judged_plainly, callers=template.callers,
        outputs=[rows(lambda r, i=i: r.outputs[i]) for i in range(count)],
        primary=primary,
        coverage=rows(lambda r: r.coverage),
        stats=rows(lambda r: r.stats),
        event_modules=template.event_modules if shapes_agree else [],
        event_absmax=(rows(lambda r: r.event_absmax) if shapes_agree
                      else torch.zeros(size, 0, device=device)),
        raised=raised,
    )
