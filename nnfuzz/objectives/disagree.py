"""``disagree``: the model against a second implementation (nnfuzz.references).

Class outputs disagree when the argmax differs; other outputs when they differ
beyond atol + rtol·|ref|. A disagreement counts only when it holds with the
example alone in its batch, as replay runs it. An example where either side's
output is not finite is no disagreement of values (NNSmith's lesson: a difference
of NaNs is a false alarm): the model's NaN is the nonfinite objective's, and the
reference's, where the model's output is finite, is reported here as a
``nonfinite`` failure that names the reference's side
(``nonfinite:reference:<kind>``, judged again by this objective, which runs the
reference: its ``judged_by`` metadata). A confirmed disagreement is
judged by a float64 copy of the model (nnfuzz.objectives.arbiter), and its
signature is the reference kind, the output compared (classes or values) and the
side float64 says is off: further class pairs or positions are hits of it.

Disagreements cluster where the model's top two classes are close (Hu et
al. 2022, arXiv 2204.04220), so the objective also reports *pressure*: the
margin between the top two probabilities and the gap to the reference, which
the loop drives down.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

import torch

from nnfuzz.domain import Inputs, call
from nnfuzz.errors import TargetError, UsageError, first_line
from nnfuzz.execution import Execution
from nnfuzz.reading import primary_output
from nnfuzz.objectives.arbiter import Arbiter
from nnfuzz.objectives.base import (DEFAULT_ATOL, DEFAULT_RTOL, JUDGED_BY, Finding, Judgement,
                                    Objective, ObjectiveContext)
from nnfuzz.config import PATH_KINDS, RUNTIME_KINDS
from nnfuzz.references import Reference, model_label, reference_for


#: References that compute in float32 like the model (execution paths, runtimes): their class
#: flips count only beyond a tie within the tolerance of values (Disagree._tied).
SAME_PRECISION = PATH_KINDS + RUNTIME_KINDS


class Disagree(Objective):
    name = "disagree"
    #: Measured on 100 digits seeds within L-inf 0.4, 5,000 executions each: with
    #: the margin records alone 63 int8 disagreements found against 68 without
    #: (no help); with steps down the margin's gradient added, 94 against 68
    #: (fp16: 38 against 15). Random search: 16 and 3.
    guides_by_default = True

    #: The margin of the model's top two classes, and minus the gap to the reference.
    pressure_columns = 2
    #: What a reproducer records to rebuild it (reproducer_metadata, from_metadata).
    metadata_keys = ("reference", "atol", "rtol", "compile_mode")

    def __init__(self, context: ObjectiveContext) -> None:
        self.reference: Reference = context.reference  # type: ignore[assignment]
        self.model = context.model
        self.names = context.names
        self.model_label = model_label(context.model)
        self.atol, self.rtol = context.atol, context.rtol
        self.origin = context.origin
        self.real_positions = context.real_positions
        self.arbiter = Arbiter(context.model, context.names, self.model_label,
                               self.reference.label)

    @classmethod
    def from_metadata(cls, context: ObjectiveContext, metadata: dict[str, str]) -> "Disagree":
        """The objective a reproducer was found with: its reference kind and tolerances."""
        kind = metadata.get("reference", "") or "reference()"
        compile_mode = metadata.get("compile_mode") or None
        try:
            reference = reference_for(kind, context.model, context.reference_factory,
                                      context.origin, context.names, context.example_inputs,
                                      compile_mode)
        except UsageError as error:
            raise UsageError(f"a disagreement with {kind}: {error}") from None
        return cls(replace(context, reference=reference,
                           atol=float(metadata.get("atol", DEFAULT_ATOL)),
                           rtol=float(metadata.get("rtol", DEFAULT_RTOL))))

    def reproducer_metadata(self) -> dict[str, str]:
        recorded = {"reference": self.reference.kind, "atol": f"{self.atol!r}",
                    "rtol": f"{self.rtol!r}"}
        if self.reference.is_runtime:
            recorded["reference_version"] = self.reference.version
            if self.reference.kind == "compile" and "(" in self.reference.label:
                recorded["compile_mode"] = self.reference.label.split("(")[1].rstrip(")")
        return recorded

    def evaluate(self, execution: Execution) -> Judgement:
        if execution.primary is None:
            return Judgement([], None)
        try:
            theirs = self._reference_output(execution)
        except _ReferenceRaised:
            return Judgement(self._raised_alone(execution), None)
        ours = execution.primary
        real = self._real(ours, execution.inputs)
        ran = execution.ran & torch.isfinite(ours.reshape(ours.shape[0], -1)).all(1)
        finite = _finite(theirs, real)  # a NaN of the reference is no difference of values
        findings = [found for example in (ran & ~finite).nonzero().flatten().tolist()
                    if (found := self._reference_nonfinite(execution, example)) is not None]
        findings += [confirmed for candidate in self._compare(ours, theirs, ran & finite, real)
                     if (confirmed := self._alone(execution, candidate)) is not None]
        return Judgement(findings, self._pressure(ours, theirs))

    def _outputs_alone(self, execution: Execution,
                       example: int) -> tuple[Inputs, torch.Tensor, torch.Tensor] | None:
        """The example in a batch of its own (as replay runs it): its inputs, and the model's
        and the reference's primary outputs in float32; None where either raises (the
        exception objective's, or the reference's: _raised_alone) or returns no tensor."""
        inputs = tuple(t[example:example + 1] for t in execution.inputs)
        with torch.no_grad():
            try:
                ours = primary_output(call(self.model, inputs, self.names))
                theirs = primary_output(self.reference.run(inputs))
            except Exception:  # noqa: BLE001 - raising alone is judged elsewhere
                return None
        if ours is None or theirs is None:
            return None
        return inputs, ours.float(), theirs.float().to(ours.device)

    def _reference_nonfinite(self, execution: Execution, example: int) -> Finding | None:
        """The reference's NaN or Inf where the model's output is finite, with the example
        alone in its batch: a ``nonfinite`` failure on the reference's side."""
        alone = self._outputs_alone(execution, example)
        if alone is None:
            return None
        inputs, ours, theirs = alone
        if not torch.isfinite(ours).all() or bool(_finite(theirs, self._real(ours, inputs)).all()):
            return None
        flat = theirs.reshape(-1)
        where = int((~torch.isfinite(flat)).nonzero()[0])
        kind = "NaN" if torch.isnan(flat[where]) else "Inf"
        detail = (f"{kind} in {self._who()}'s output[{where}] where the {self.model_label} model's "
                  f"output is finite: the reference's side is off")
        return Finding(example, "nonfinite", detail, f"nonfinite:reference:{self.reference.kind}",
                       {JUDGED_BY: self.name})

    def _reference_output(self, execution: Execution) -> torch.Tensor:
        """The reference's primary output (float32), shaped as the model's."""
        try:
            with torch.no_grad():
                output = primary_output(self.reference.run(execution.inputs))
        except Exception as error:  # noqa: BLE001 - judged example by example
            # Where the model raises too, that is the exception objective's finding; where
            # only the reference does, it is this one's (disagree:raised:<type>). Either way
            # the run goes on: a nightly job that adds --reference keeps its other findings.
            raise _ReferenceRaised from error
        model = execution.primary
        if output is None or model is None or output.shape != model.shape:
            shape = None if output is None else tuple(output.shape)
            raise TargetError(f"{self.origin}: the {self.reference.label} reference returned shape "
                              f"{shape}, the model {tuple(model.shape) if model is not None else None}:"
                              " a reference must compute the same function.")
        return output.float().to(model.device)

    def _raised_alone(self, execution: Execution) -> list[Finding]:
        """The examples the reference raises on, each in a batch of its own (what replay
        runs), where the model itself runs."""
        findings = []
        for example in execution.ran.nonzero().flatten().tolist():
            inputs = tuple(t[example:example + 1] for t in execution.inputs)
            if not self._eager_runs_alone(inputs):
                continue
            try:
                with torch.no_grad():
                    self.reference.run(inputs)
            except Exception as error:  # noqa: BLE001 - the reference's failure is the finding
                kind = type(error).__name__
                model = "eager model" if self.reference.is_runtime else "model"
                findings.append(self.finding(
                    example, f"{self._who()} raised {kind}: {first_line(error)[:200]} on an "
                             f"input the {model} accepts", f"raised:{kind}"))
        return findings

    def _who(self) -> str:
        if self.reference.kind == "reference()":
            return "the target's reference()"
        return f"the {self.reference.label} {'runtime' if self.reference.is_runtime else 'reference'}"

    def _eager_runs_alone(self, inputs: Inputs) -> bool:
        """Whether the model runs on this one example by itself (a model can raise on an
        example alone that it ran in a batch: that is the exception objective's finding)."""
        try:
            with torch.no_grad():
                call(self.model, inputs, self.names)
        except Exception:  # noqa: BLE001 - the eager model's failure, judged elsewhere
            return False
        return True

    def _compare(self, ours: torch.Tensor, theirs: torch.Tensor, ran: torch.Tensor,
                 real: torch.Tensor | None) -> list[Finding]:
        """Disagreements among the examples ``ran`` marks (both sides finite), compared at
        the ``real`` positions."""
        if _is_classes(ours):
            return self._class_findings(ours, theirs, ran, real)
        return self._value_findings(ours, theirs, ran, real)

    def _real(self, ours: torch.Tensor, inputs: Inputs) -> torch.Tensor | None:
        """The positions to compare, (B, L), when the output has one per token: padding
        positions of a language model are whatever its kernels leave there."""
        real = self.real_positions(inputs) if self.real_positions is not None else None
        if real is None or ours.dim() < 3 or ours.shape[1] != real.shape[1]:
            return None
        return real.to(ours.device)

    def _alone(self, execution: Execution, candidate: Finding) -> Finding | None:
        """The disagreement again with the example in a batch of its own.

        Results depend on the batch: dynamic int8 quantization scales
        activations by the batch's range, and kernels block differently by
        size. A reproducer is replayed alone, so only what holds alone counts.
        """
        alone = self._outputs_alone(execution, candidate.example)
        if alone is None:
            return None
        inputs, ours, theirs = alone
        real = self._real(ours, inputs)
        finite = torch.isfinite(ours).all().reshape(1) & _finite(theirs, real)
        found = self._compare(ours, theirs, finite, real)
        if not found:
            return None
        verdict, side = self.arbiter.judge(inputs, ours, theirs, real)
        return Finding(candidate.example, found[0].objective, f"{found[0].detail}; {verdict}",
                       f"{found[0].signature}:{side}", {"arbiter": verdict})

    def _class_findings(self, ours: torch.Tensor, theirs: torch.Tensor, ran: torch.Tensor,
                        real: torch.Tensor | None) -> list[Finding]:
        mine, other = ours.argmax(-1).reshape(ours.shape[0], -1), theirs.argmax(-1).reshape(ours.shape[0], -1)
        differ = mine != other  # (B, positions)
        if self.reference.kind in SAME_PRECISION:
            differ &= ~self._tied(ours, mine, other)
        if real is not None and real.shape == differ.shape:
            differ &= real
        findings = []
        for example in (differ.any(1) & ran).nonzero().flatten().tolist():
            where = int(differ[example].nonzero()[0])
            a, b = int(mine[example, where]), int(other[example, where])
            at = f" at position {where}" if differ.shape[1] > 1 else ""
            findings.append(self.finding(example, f"{self.model_label} predicts {a}, "
                                                  f"{self.reference.label} predicts {b}{at}",
                                         f"{self.reference.kind}:classes"))
        return findings

    def _tied(self, ours: torch.Tensor, mine: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """(B, positions): where the model's scores of its class and of the reference's are
        within the tolerance of values, atol + rtol·|score|: a float32 kernel that sums in
        another order flips such a tie (a random-init GPT-2's top two logits 2e-7 apart under
        sdpa-math), which no path computes differently."""
        scores = ours.reshape(ours.shape[0], -1, ours.shape[-1])
        top = scores.gather(-1, mine.unsqueeze(-1)).squeeze(-1)
        theirs_in_ours = scores.gather(-1, other.unsqueeze(-1)).squeeze(-1)
        return (top - theirs_in_ours).abs() <= self.atol + self.rtol * top.abs()

    def _value_findings(self, ours: torch.Tensor, theirs: torch.Tensor, ran: torch.Tensor,
                        real: torch.Tensor | None) -> list[Finding]:
        flat_ours, flat_theirs = ours.reshape(ours.shape[0], -1), theirs.reshape(ours.shape[0], -1)
        excess = (flat_ours - flat_theirs).abs() - (self.atol + self.rtol * flat_theirs.abs())
        if real is not None:  # (B, L) -> one per value of each position
            per_position = flat_ours.shape[1] // real.shape[1]
            excess = torch.where(real.repeat_interleave(per_position, 1), excess, -1.0)
        findings = []
        for example in ((excess > 0).any(1) & ran).nonzero().flatten().tolist():
            where = int(excess[example].argmax())
            a, b = float(flat_ours[example, where]), float(flat_theirs[example, where])
            findings.append(self.finding(
                example, f"output[{where}] differs by {abs(a - b):.4g}: {self.model_label} {a:.6g}, "
                         f"{self.reference.label} {b:.6g} (atol {self.atol:g}, rtol {self.rtol:g})",
                f"{self.reference.kind}:values"))
        return findings

    def _pressure(self, ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        """Margin of the model's top two classes, and minus the gap to the reference."""
        size = ours.shape[0]
        if _is_classes(ours):
            margin = top_two_margin(ours)
            gap = (ours.softmax(-1) - theirs.softmax(-1)).abs().reshape(size, -1).amax(1)
        else:
            margin = torch.zeros(size, device=ours.device)
            gap = ((ours - theirs).abs() - self.rtol * theirs.abs()).reshape(size, -1).amax(1)
        return torch.stack((margin, -gap), 1)

    def steer(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Down the top-two margin: disagreements live where the model hesitates."""
        return top_two_margin


def top_two_margin(output: torch.Tensor) -> torch.Tensor:
    """Per example, the smallest gap between the two most probable classes (B,)."""
    if not _is_classes(output):
        return torch.zeros(output.shape[0], device=output.device)
    top = output.float().softmax(-1).topk(2, dim=-1).values  # (B, ..., 2)
    return (top[..., 0] - top[..., 1]).reshape(output.shape[0], -1).amin(1)


#: A disagreement's signature before it named the reference kind (nnfuzz 0.1's reproducers).
_LEGACY = re.compile(r"disagree:(\d+->\d+|output\[\d+\])")


def same_signature(recorded: str, now: str) -> bool:
    """Whether a finding's signature is a reproducer's: a disagreement saved as
    ``disagree:3->5`` or ``disagree:output[2]`` is any class or value disagreement now, so that
    replay does not call it fixed for its new name."""
    if recorded == now:
        return True
    if _LEGACY.fullmatch(recorded) is None:
        return False
    return now.split(":")[::2][:2] == ["disagree", "classes" if "->" in recorded else "values"]


def _finite(output: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """(B,) whether an example's output is finite at every compared position."""
    finite = torch.isfinite(output).reshape(output.shape[0], -1)
    if real is not None and finite.shape[1] % real.shape[1] == 0:
        finite |= ~real.repeat_interleave(finite.shape[1] // real.shape[1], 1)
    return finite.all(1)


def _is_classes(output: torch.Tensor) -> bool:
    """Class scores: a last dimension of more than one (the README's *Objectives*)."""
    return output.dim() >= 2 and output.shape[-1] > 1


class _ReferenceRaised(Exception):
    """The reference raised on a batch: its examples are looked at one by one."""
