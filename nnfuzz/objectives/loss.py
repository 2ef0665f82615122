"""``loss``: a broken loss, or a broken gradient of it.

Training breaks long before inference does: a loss that is NaN or Inf, or
whose gradient with respect to the input or to a parameter is, poisons the
next optimizer step. The objective runs the batch with autograd (the only
objective that needs it), checks the per-example loss and the input
gradient (each example's own), and the parameter gradient (one for the whole
batch): when that one is bad, it bisects the batch to blame the examples
responsible rather than all of them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

import torch.utils._pytree as pytree

from nnfuzz.domain import call
from nnfuzz.errors import TargetError, first_line, user_traceback
from nnfuzz.execution import Execution
from nnfuzz.reading import primary_output
from nnfuzz.objectives.base import Finding, Judgement, Objective, ObjectiveContext

Rows = torch.Tensor


class LossObjective(Objective):
    name = "loss"
    #: Measured on TensorFuzz's nans experiment (6 seed images x 3 run seeds):
    #: the worst image's median fell from 18,500 to 2,900 executions to the NaN.
    guides_by_default = True
    #: Minus each example's loss: a loss that keeps growing is heading for Inf or NaN.
    pressure_columns = 1

    def __init__(self, context: ObjectiveContext) -> None:
        self.model = context.model
        self.names = context.names
        self.loss = context.loss
        self.origin = context.origin
        self.parameters = [(n, p) for n, p in context.model.named_parameters() if p.requires_grad]

    def evaluate(self, execution: Execution) -> Judgement:
        rows = execution.ran
        if execution.labels is not None and execution.has_label is not None:
            rows = rows & execution.has_label
        rows = rows.nonzero().flatten()
        pressure = torch.full((execution.size, 1), float("nan"), device=execution.coverage.device)
        if not len(rows):
            return Judgement([], pressure)
        inputs = tuple(t[rows].detach().clone().requires_grad_(t.dtype.is_floating_point)
                       for t in execution.inputs)
        labels = execution.labels[rows] if execution.labels is not None else None
        with torch.enable_grad():
            output = call(self.model, inputs, self.names)  # as the model returned it
            losses = self._per_example(output, labels, len(rows))  # (n,)
            pressure[rows.to(pressure.device), 0] = -losses.detach().float().to(pressure.device)
            return Judgement(self._findings(losses, output, inputs, labels, rows), pressure)

    def descent(self) -> Callable[[Any, torch.Tensor | None], torch.Tensor]:
        """Minus each example's loss (its pressure): walking it down walks the loss up,
        toward Inf, NaN and the gradients that break with them."""
        return lambda output, labels: -self._per_example(output, labels, _rows(output))

    def _findings(self, losses: torch.Tensor, output: Any, inputs: tuple[torch.Tensor, ...],
                  labels: torch.Tensor | None, rows: Rows) -> list[Finding]:
        """Nothing when the loss and every gradient is finite (one backward says so);
        otherwise the loss, the input gradients and the parameter gradients, in turn,
        each blaming only the examples the one before left healthy."""
        if self._all_finite(losses, inputs):
            return []
        findings = self._bad_losses(losses, output, rows)
        blamed = {f.example for f in findings}
        healthy = torch.tensor([i for i in range(len(rows)) if int(rows[i]) not in blamed],
                               dtype=torch.long, device=rows.device)
        if len(healthy):
            findings += self._bad_input_gradients(losses, inputs, rows, healthy)
            blamed |= {f.example for f in findings}
            healthy = torch.tensor([i for i in healthy.tolist() if int(rows[i]) not in blamed],
                                   dtype=torch.long, device=rows.device)
        if len(healthy) and self.parameters:
            findings += [self._parameter_finding(rows, inputs, labels, i)
                         for i in self._blame(inputs, labels, healthy)]
        return findings

    def _all_finite(self, losses: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> bool:
        """One backward for the whole batch: the common case, where nothing is wrong.

        Only when something is does the objective look closer, check by check.
        """
        if not bool(torch.isfinite(losses.detach()).all()):
            return False
        wrt = [t for t in inputs if t.requires_grad] + [p for _, p in self.parameters]
        if not wrt:
            return True
        grads = torch.autograd.grad(losses.sum(), wrt, retain_graph=True, allow_unused=True)
        return all(g is None or bool(torch.isfinite(g).all()) for g in grads)

    # --- the three checks ------------------------------------------------------------

    def _bad_losses(self, losses: torch.Tensor, output: Any, rows: Rows) -> list[Finding]:
        bad = (~torch.isfinite(losses.detach())).nonzero().flatten()
        primary = primary_output(output)
        findings = []
        for i in bad.tolist():
            finite = primary is None or bool(torch.isfinite(primary[i]).all())
            source = " (the model's output is finite: the loss function made it)" if finite else ""
            findings.append(self.finding(int(rows[i]), f"the loss is {_kind(losses[i])}{source}",
                                         "loss"))
        return findings

    def _bad_input_gradients(self, losses: torch.Tensor, inputs: tuple[torch.Tensor, ...],
                             rows: Rows, healthy: Rows) -> list[Finding]:
        leaves = [t for t in inputs if t.requires_grad]
        if not leaves:
            return []
        grads = torch.autograd.grad(losses[healthy].sum(), leaves, retain_graph=True,
                                    allow_unused=True)
        findings, blamed = [], set()
        for position, grad in enumerate(grads):
            if grad is None:
                continue
            bad = ~torch.isfinite(grad[healthy].reshape(len(healthy), -1)).all(1)
            for i in healthy[bad].tolist():
                if i not in blamed:
                    blamed.add(i)
                    findings.append(self.finding(
                        int(rows[i]), f"the gradient of the loss w.r.t. input {position} is "
                                      f"{_kind(grad[i])}", "input-grad"))
        return findings

    def _blame(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor | None,
               rows: Rows) -> list[int]:
        """The examples whose own parameter gradient is bad, by bisection.

        Each half gets a forward pass of its own: in a shared graph, an
        excluded example's zero upstream gradient times an infinite local one
        (sqrt at 0, say) is NaN, and would blame innocent examples.
        """
        if self._first_bad_parameter(inputs, labels, rows) is None:
            return []
        if len(rows) == 1:
            return [int(rows[0])]
        half = len(rows) // 2
        return self._blame(inputs, labels, rows[:half]) + self._blame(inputs, labels, rows[half:])

    def _first_bad_parameter(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor | None,
                             rows: Rows) -> tuple[str, str] | None:
        subset = tuple(t[rows].detach() for t in inputs)
        total = self._per_example(call(self.model, subset, self.names),
                                  labels[rows] if labels is not None else None, len(rows)).sum()
        grads = torch.autograd.grad(total, [p for _, p in self.parameters], allow_unused=True)
        for (name, _), grad in zip(self.parameters, grads):
            if grad is not None and not bool(torch.isfinite(grad).all()):
                return name, _kind(grad)
        return None

    def _parameter_finding(self, rows: Rows, inputs: tuple[torch.Tensor, ...],
                           labels: torch.Tensor | None, row: int) -> Finding:
        one = torch.tensor([row], device=rows.device)
        name, kind = self._first_bad_parameter(inputs, labels, one) or ("?", "NaN")
        return self.finding(int(rows[row]), f"the gradient of the loss w.r.t. parameter {name!r} is {kind}",
                            f"param-grad:{name}")

    # --- the target's loss -------------------------------------------------------------

    def _per_example(self, output: Any, labels: torch.Tensor | None, count: int) -> torch.Tensor:
        """The loss of each of ``count`` examples, shape (n,), whatever the target's loss
        returns; ``output`` is what the model returned (a dict stays a dict)."""
        value = self._call(output, labels)
        if value.dim() == 1 and value.shape[0] == count:
            return value
        if value.dim() > 1 and value.shape[0] == count:
            return value.reshape(count, -1).sum(1)
        if value.dim() == 0:
            # A reduced loss: recover each example's share, one call per example.
            return torch.stack([self._call(_example(output, i, count), None if labels is None
                                           else labels[i:i + 1]).reshape(()) for i in range(count)])
        raise TargetError(f"{self.origin}: loss(output, target) returned shape {tuple(value.shape)}"
                          f" for a batch of {count}: return one loss per example (N,) or a scalar.")

    def _call(self, output: Any, labels: torch.Tensor | None) -> torch.Tensor:
        loss: Callable[..., Any] = self.loss  # type: ignore[assignment]
        try:
            value = loss(output, labels)
        except Exception as error:  # noqa: BLE001 - the target's bug, reported once
            raise TargetError(f"{self.origin}: loss(output, target) raised {type(error).__name__}: "
                              f"{first_line(error)}: loss() gets the model's output as the model "
                              f"returned it (here {_structure(output)}) and the seeds' labels; "
                              "fix it so it accepts any batch of them.",
                              context=user_traceback(error)) from None
        if not isinstance(value, torch.Tensor):
            raise TargetError(f"{self.origin}: loss(output, target) returned "
                              f"{type(value).__name__}: return a tensor, (N,) or a scalar.")
        return value.float()


def _rows(output: Any) -> int:
    """How many examples an output holds (its primary tensor's first dimension)."""
    primary = primary_output(output)
    return primary.shape[0] if primary is not None else 0


def _example(output: Any, row: int, count: int) -> Any:
    """Example ``row`` of a model's output, in its own structure (batch dimension kept)."""
    return pytree.tree_map(lambda leaf: leaf[row:row + 1] if isinstance(leaf, torch.Tensor)
                           and leaf.dim() > 0 and leaf.shape[0] == count else leaf, output)


def _structure(output: Any) -> str:
    """How an error names what a model returned: a tensor's shape, a mapping's keys."""
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, dict):
        return f"a {type(output).__name__} with keys {', '.join(map(str, output))}"
    return f"a {type(output).__name__}"


def _kind(tensor: torch.Tensor) -> str:
    return "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
