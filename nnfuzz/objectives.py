"""Objectives: what counts as a failure (DESIGN.md §2).

An objective is a small plug-in: a name and ``judge(execution)``, which
returns a :class:`Finding` per failing example. Judging is batched: an
objective computes a mask over the batch and builds findings only for the
(rare) failing rows. The signature of a finding says what makes two failures
the same bug; it is what reproducers are deduplicated by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar

import torch

from nnfuzz.domain import Inputs, Names, arguments
from nnfuzz.errors import TargetError, UsageError, first_line, user_traceback
from nnfuzz.execution import Execution

if TYPE_CHECKING:
    from nnfuzz.differential import Reference


@dataclass(frozen=True)
class Finding:
    """One failing example of a batch."""

    example: int
    objective: str
    detail: str
    signature: str


class Objective:
    """Base class of objectives: subclasses set ``name`` and define ``judge``."""

    name: ClassVar[str]
    #: Whether its pressure guides the search unless told otherwise: only where
    #: it was measured to help.
    guides_by_default: ClassVar[bool] = False

    def judge(self, execution: Execution) -> list[Finding]:
        raise NotImplementedError

    def pressure(self, execution: Execution) -> torch.Tensor | None:
        """Optional guidance: per-example quantities (B, K) that shrink as an
        example gets closer to failing; the loop keeps inputs that set a new low."""
        return None

    def steer(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Optional guidance: a differentiable per-example quantity of the primary
        output that shrinks toward failing; guided mutations step down its gradient."""
        return None

    def finding(self, example: int, detail: str, key: str) -> Finding:
        return Finding(example, self.name, detail, f"{self.name}:{key}")


class Nonfinite(Objective):
    """NaN or Inf in any output or in any module's output."""

    name = "nonfinite"

    def judge(self, execution: Execution) -> list[Finding]:
        bad = ~torch.isfinite(execution.event_absmax).all(1)
        if execution.judged_plainly:  # the instrumented pass computes something else
            bad = torch.zeros_like(bad)
        for tensor in execution.outputs:
            bad |= ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(1)
        bad &= execution.ran
        return [self._describe(execution, int(example)) for example in bad.nonzero().flatten()]

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


class RaisedException(Objective):
    """The model raised on a valid input."""

    name = "exception"

    def judge(self, execution: Execution) -> list[Finding]:
        return [self.finding(example, error.describe(), f"{error.type}:{error.location}")
                for example, error in enumerate(execution.raised) if error is not None]


class UserObjective(Objective):
    """A callable ``(inputs, output) -> BoolTensor (N,)`` from the target's ``objectives()``:
    ``inputs`` as the model takes them (a tuple, or a dict by name), ``output`` as it returned it."""

    def __init__(self, check: Callable[..., torch.Tensor], origin: str, names: Names = None) -> None:
        self.check = check
        self.name = check.__name__  # type: ignore[misc]
        self.origin = origin
        self.names = names

    def judge(self, execution: Execution) -> list[Finding]:
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
        return [Finding(int(example), self.name, f"objective {self.name} returned True", self.name)
                for example in failing.nonzero().flatten()]


#: ``disagree``'s default tolerances for outputs that are not class scores: wide
#: enough that fp16 rounding of well-scaled outputs (about 1e-3 relative) passes.
DEFAULT_ATOL = 1e-3
DEFAULT_RTOL = 1e-2


@dataclass
class ObjectiveContext:
    """What objectives need beyond one execution; set up once per run."""

    model: torch.nn.Module
    #: The target file's name, which starts error messages about it.
    origin: str = "the target"
    #: The target's ``loss(output, target)``, enabling the ``loss`` objective.
    loss: Callable[..., torch.Tensor] | None = None
    #: The reference the ``disagree`` objective compares against.
    reference: "Reference | None" = None
    #: Tolerances of ``disagree`` for outputs that are not class scores.
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    #: The target's ``objectives()``.
    user: list[Callable[..., torch.Tensor]] = field(default_factory=list)
    #: The inputs' keyword names, for a model called with named inputs.
    names: Names = None
    #: Where a batch holds real tokens, (B, L), for models with a padding mask
    #: (Domain.real_positions): ``disagree`` compares per-position outputs only there.
    real_positions: Callable[[Inputs], torch.Tensor | None] | None = None


BUILT_IN = ("nonfinite", "exception", "loss", "disagree")


def available(context: ObjectiveContext) -> dict[str, Callable[[], Objective]]:
    """Every objective this context can check, by name; all are on by default."""
    from nnfuzz.differential import Disagree
    from nnfuzz.gradients import LossObjective

    found: dict[str, Callable[[], Objective]] = {
        Nonfinite.name: Nonfinite,
        RaisedException.name: RaisedException,
    }
    if context.loss is not None:
        found[LossObjective.name] = lambda: LossObjective(context)
    if context.reference is not None:
        found[Disagree.name] = lambda: Disagree(context)
    for check in context.user:
        name = getattr(check, "__name__", "")
        if not name.isidentifier() or name in BUILT_IN:
            raise TargetError(f"{context.origin}: objectives() has a callable named {name!r}: "
                              f"give each a def with a name that is not one of {', '.join(BUILT_IN)}.")
        found[name] = lambda check=check: UserObjective(check, context.origin, context.names)
    return found


#: Why a built-in objective is missing, when it is asked for by name.
NEEDS = {
    "loss": "define loss(output, target) in the target",
    "disagree": "define reference() in the target, or give --reference int8, fp16 or bf16",
}


def build_objectives(names: list[str] | tuple[str, ...] | None,
                     context: ObjectiveContext) -> list[Objective]:
    """The objectives named, or every available one; a name that cannot be built is a usage error."""
    found = available(context)
    chosen = list(dict.fromkeys(names or found))
    for name in chosen:
        if name in NEEDS and name not in found:
            raise UsageError(f"--objective {name} needs a {name} to check: {NEEDS[name]}.")
        if name not in found:
            raise UsageError(f"--objective {name!r} is unknown: choose from {', '.join(found)}.")
    return [found[name]() for name in chosen]


def judge(objectives: list[Objective], execution: Execution) -> list[Finding]:
    """Every finding of every objective; an example fails at most once, first objective wins."""
    seen: set[int] = set()
    findings = []
    for objective in objectives:
        for finding in objective.judge(execution):
            if finding.example not in seen:
                seen.add(finding.example)
                findings.append(finding)
    return findings


def pressure(objectives: list[Objective], execution: Execution) -> torch.Tensor:
    """Per-example quantities (B, K), lower meaning closer to failing, from every objective."""
    columns = [p for p in (o.pressure(execution) for o in objectives) if p is not None]
    if not columns:
        return torch.zeros(execution.size, 0, device=execution.coverage.device)
    return torch.cat(columns, 1)
