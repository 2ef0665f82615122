"""The ``disagree`` objective: the model against a second implementation.

The reference is the target's ``reference()`` (an exported or hand-optimised
copy, say), or a copy nnfuzz builds: dynamic int8 quantization, or the
weights and inputs cast to float16 or bfloat16. Class outputs disagree when
the argmax differs; other outputs when they differ beyond atol + rtol·|ref|.

Disagreements cluster where the model's top two classes are close (Hu et
al. 2022, arXiv 2204.04220), so the objective also reports *pressure*: the
margin between the top two probabilities and the gap to the reference, which
the loop drives down.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import TargetError, UsageError, first_line
from nnfuzz.execution import Execution, primary_output
from nnfuzz.objectives import Finding, Objective, ObjectiveContext

#: The copies ``--reference`` builds.
REFERENCE_KINDS = ("int8", "fp16", "bf16")
#: Layers dynamic int8 quantization replaces.
QUANTIZABLE = (nn.Linear, nn.LSTM, nn.GRU)
CAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Reference:
    """A second implementation: ``run(inputs)`` returns its output."""

    label: str
    run: Callable[[Inputs], Any]
    #: What rebuilds it at replay: one of REFERENCE_KINDS, or "reference()".
    kind: str


def quantize_int8(model: nn.Module) -> nn.Module:
    """A dynamically int8-quantized copy of the model's Linear and recurrent layers.

    torch 2.13 still ships ``torch.ao.quantization.quantize_dynamic`` (marked
    deprecated in favour of torchao); it runs on this CPU build with nothing
    more to install, which is why nnfuzz uses it. This function is the one
    place to swap in torchao's ``quantize_`` when it is removed.
    """
    if not any(isinstance(m, QUANTIZABLE) for m in model.modules()):
        raise UsageError("--reference int8: the model has no nn.Linear, nn.LSTM or nn.GRU layer "
                         "to quantize: use --reference fp16 or bf16, or define reference().")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise UsageError("--reference int8: dynamic quantization runs on the CPU only: "
                         "use --device cpu, or --reference fp16 or bf16.")
    # quantize_dynamic swaps children only: hold the model as a child so that a
    # model which is itself one nn.Linear is quantized too.
    holder = nn.ModuleDict({"model": copy.deepcopy(model)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize = torch.ao.quantization.quantize_dynamic
        quantized = quantize(holder, set(QUANTIZABLE), dtype=torch.qint8)["model"].eval()
    if any(isinstance(m, QUANTIZABLE) and type(m).__module__.startswith("torch.nn.modules")
           for m in quantized.modules()):
        leftover = [type(m).__name__ for m in quantized.modules() if isinstance(m, QUANTIZABLE)]
        warnings.warn(f"--reference int8 left {', '.join(sorted(set(leftover)))} layers in float: "
                      "dynamic quantization does not support them here", stacklevel=2)
    return quantized


def build_reference(model: nn.Module, kind: str, names: Names = None) -> Reference:
    """The copy of ``model`` that ``--reference kind`` names, called as the model is."""
    if kind == "int8":
        quantized = quantize_int8(model)
        return Reference("int8", lambda inputs: call(quantized, inputs, names), kind)
    if kind not in CAST_DTYPES:
        raise UsageError(f"--reference {kind!r} is unknown: choose int8, fp16 or bf16.")
    dtype = CAST_DTYPES[kind]
    cast = copy.deepcopy(model).to(dtype).eval()

    def run(inputs: Inputs) -> Any:
        return call(cast, tuple(t.to(dtype) if t.dtype.is_floating_point else t for t in inputs),
                    names)

    return Reference(kind, run, kind)


def user_reference(factory: Callable[[], Any], origin: str, names: Names = None) -> Reference:
    """The target's ``reference()``: a module or any callable taking the model's inputs."""
    try:
        implementation = factory()
    except Exception as error:  # noqa: BLE001 - the target's bug
        raise TargetError(f"{origin}: reference() raised {type(error).__name__}: "
                          f"{first_line(error)}") from None
    if not callable(implementation):
        raise TargetError(f"{origin}: reference() returned {type(implementation).__name__}: "
                          "return a module or a callable taking the same inputs as the model.")
    if isinstance(implementation, nn.Module):
        implementation.eval()
    return Reference("reference", lambda inputs: call(implementation, inputs, names),
                     "reference()")


def reference_for(kind: str | None, model: nn.Module, factory: Callable[[], Any] | None,
                  origin: str, names: Names = None) -> Reference | None:
    """The reference of ``kind``: "reference()" (the target's), int8, fp16, bf16, or none."""
    if not kind:
        return None
    if kind == "reference()":
        if factory is None:
            raise UsageError(f"{origin} defines no reference(): define it, or use "
                             "--reference int8, fp16 or bf16.")
        return user_reference(factory, origin, names)
    return build_reference(model, kind, names)


def model_label(model: nn.Module) -> str:
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
             torch.float64: "fp64"}
    for parameter in model.parameters():
        return names.get(parameter.dtype, "model")
    return "model"


class Disagree(Objective):
    name = "disagree"
    #: Measured on 100 digits seeds within L-inf 0.4, 5,000 executions each: with
    #: the margin records alone 63 int8 disagreements found against 68 without
    #: (no help); with steps down the margin's gradient added, 94 against 68
    #: (fp16: 38 against 15). Random search: 16 and 3.
    guides_by_default = True

    def __init__(self, context: ObjectiveContext) -> None:
        self.reference: Reference = context.reference  # type: ignore[assignment]
        self.model = context.model
        self.names = context.names
        self.model_label = model_label(context.model)
        self.atol, self.rtol = context.atol, context.rtol
        self.origin = context.origin
        self.real_positions = context.real_positions
        self._cache: tuple[Execution, torch.Tensor] | None = None

    def _reference_output(self, execution: Execution) -> torch.Tensor:
        """The reference's primary output (float32), computed once per execution."""
        # Keyed by the object itself, held alive: an id() could be reused by a later batch.
        if self._cache is not None and self._cache[0] is execution:
            return self._cache[1]
        try:
            with torch.no_grad():
                output = primary_output(self.reference.run(execution.inputs))
        except Exception as error:  # noqa: BLE001 - the reference's failure is the target's bug
            raise TargetError(f"{self.origin}: the {self.reference.label} reference raised "
                              f"{type(error).__name__}: {first_line(error)}") from None
        model = execution.primary
        if output is None or model is None or output.shape != model.shape:
            shape = None if output is None else tuple(output.shape)
            raise TargetError(f"{self.origin}: the {self.reference.label} reference returned shape "
                              f"{shape}, the model {tuple(model.shape) if model is not None else None}:"
                              " a reference must compute the same function.")
        output = output.float().to(model.device)
        self._cache = (execution, output)
        return output

    def judge(self, execution: Execution) -> list[Finding]:
        if execution.primary is None:
            return []
        ours, theirs = execution.primary, self._reference_output(execution)
        ran = execution.ran & torch.isfinite(ours.reshape(ours.shape[0], -1)).all(1)
        return [confirmed for candidate in self._compare(ours, theirs, ran, execution.inputs)
                if (confirmed := self._alone(execution, candidate)) is not None]

    def _compare(self, ours: torch.Tensor, theirs: torch.Tensor, ran: torch.Tensor,
                 inputs: Inputs) -> list[Finding]:
        real = self._real(ours, inputs)
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
        inputs = tuple(t[candidate.example:candidate.example + 1] for t in execution.inputs)
        with torch.no_grad():
            ours = primary_output(call(self.model, inputs, self.names))
            theirs = primary_output(self.reference.run(inputs))
        if ours is None or theirs is None:
            return None
        ours = ours.float()
        found = self._compare(ours, theirs.float().to(ours.device),
                              torch.ones(1, dtype=torch.bool, device=ours.device), inputs)
        return Finding(candidate.example, found[0].objective, found[0].detail,
                       found[0].signature) if found else None

    def _class_findings(self, ours: torch.Tensor, theirs: torch.Tensor, ran: torch.Tensor,
                        real: torch.Tensor | None) -> list[Finding]:
        mine, other = ours.argmax(-1).reshape(ours.shape[0], -1), theirs.argmax(-1).reshape(ours.shape[0], -1)
        differ = mine != other  # (B, positions)
        if real is not None and real.shape == differ.shape:
            differ &= real
        findings = []
        for example in (differ.any(1) & ran).nonzero().flatten().tolist():
            where = int(differ[example].nonzero()[0])
            a, b = int(mine[example, where]), int(other[example, where])
            at = f" at position {where}" if differ.shape[1] > 1 else ""
            findings.append(self.finding(example, f"{self.model_label} predicts {a}, "
                                                  f"{self.reference.label} predicts {b}{at}", f"{a}->{b}"))
        return findings

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
                f"output[{where}]"))
        return findings

    def pressure(self, execution: Execution) -> torch.Tensor | None:
        """Margin of the model's top two classes, and minus the gap to the reference."""
        if execution.primary is None:
            return None
        ours, theirs = execution.primary, self._reference_output(execution)
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


def _is_classes(output: torch.Tensor) -> bool:
    """Class scores: a last dimension of more than one (DESIGN §2)."""
    return output.dim() >= 2 and output.shape[-1] > 1
