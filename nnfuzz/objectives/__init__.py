"""Objectives: what counts as a failure (the README's *Objectives*), and the registry that builds them.

One module per objective (``nonfinite``, ``exception``, ``loss``, ``disagree``,
the target's own in ``user``); what they share is in ``base``. Every objective
is built here, from one :class:`ObjectiveContext`: for a run (``context_for``,
then ``build_objectives``) and for a reproducer at replay (``rebuild``, from
the metadata the objective wrote into it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from nnfuzz.errors import TargetError, UsageError
from nnfuzz.execution import Execution
from nnfuzz.objectives.base import (DEFAULT_ATOL, DEFAULT_RTOL, Finding, Judgement, Objective,
                                    ObjectiveContext, judged_by)
from nnfuzz.objectives.disagree import Disagree
from nnfuzz.objectives.exception import RaisedException
from nnfuzz.objectives.loss import LossObjective
from nnfuzz.objectives.nonfinite import Nonfinite
from nnfuzz.objectives.user import UserObjective

if TYPE_CHECKING:
    from nnfuzz.domain import Domain
    from nnfuzz.target import Target

__all__ = ["BUILT_IN", "DEFAULT_ATOL", "DEFAULT_RTOL", "NEEDS", "Disagree", "Finding", "Judgement",
           "LossObjective", "Nonfinite", "Objective", "ObjectiveContext", "RaisedException",
           "UserObjective", "BatchJudgement", "available", "build_objectives", "context_for", "judge",
           "judging", "rebuild", "rebuild_key"]

BUILT_IN = ("nonfinite", "exception", "loss", "disagree")

#: Why a built-in objective is missing, when it is asked for by name.
NEEDS = {
    "loss": "define loss(output, target) in the target",
    "disagree": "define reference() in the target, or give --reference (int8, fp16, bf16, "
                "autocast-bf16, autocast-fp16, fastpath-off, sdpa-math, deterministic, no-tf32, "
                "compile, export, onnx)",
}


#: Seeds a runtime reference is traced on.
EXAMPLE_SEEDS = 4


def context_for(target: "Target", reference: str | None = None, atol: float | None = None,
                rtol: float | None = None, domain: "Domain | None" = None,
                compile_mode: str | None = None) -> ObjectiveContext:
    """What the objectives check against: reference() when the target defines one
    (the README's *Objectives*), else the ``reference`` kind's copy or runtime (--reference); the
    target's loss and its own objectives; the domain's padding mask, where it has one.
    ``atol``/``rtol`` None: the reference's own defaults (tighter for runtimes)."""
    from nnfuzz.references import reference_for
    from nnfuzz.config import default_tolerances

    kind = reference
    if target.reference is not None:
        if reference:
            warnings.warn(f"--reference {reference} is ignored: {target.origin} "
                          "defines reference(), which disagree uses", stacklevel=2)
        kind = "reference()"
    names = target.input_names
    default_atol, default_rtol = default_tolerances(kind)
    example = (tuple(t[:EXAMPLE_SEEDS] for t in target.seeds) if target.seeds is not None
               else None)
    return ObjectiveContext(model=target.model, origin=target.origin, loss=target.loss,
                            reference=reference_for(kind, target.model, target.reference,
                                                    target.origin, names, example, compile_mode),
                            reference_factory=target.reference,
                            atol=atol if atol is not None else default_atol,
                            rtol=rtol if rtol is not None else default_rtol,
                            example_inputs=example, compile_mode=compile_mode,
                            user=tuple(target.objectives), names=names,
                            real_positions=domain.real_positions if domain else None)


def available(context: ObjectiveContext) -> dict[str, Callable[[], Objective]]:
    """Every objective this context can check, by name; all are on by default."""
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


#: Objectives a reproducer's metadata rebuilds (Objective.reproducer_metadata): by name.
FROM_METADATA = {Disagree.name: Disagree}


def judging(objectives: list[Objective], objective: str, metadata: dict[str, str]) -> Objective:
    """Which of a run's objectives judges a finding of ``objective`` with ``metadata`` again
    (to minimize it, and for the metadata its reproducer records)."""
    name = judged_by(objective, metadata)
    return next(o for o in objectives if o.name == name)


def rebuild_key(name: str, metadata: dict[str, str]) -> tuple[str, ...]:
    """Reproducers with the same key are judged by the same rebuilt objective."""
    name = judged_by(name, metadata)
    kind = FROM_METADATA.get(name)
    return (name, *(metadata.get(key, "") for key in (kind.metadata_keys if kind else ())))


def rebuild(name: str, metadata: dict[str, str], context: ObjectiveContext,
            origin: str) -> Objective:
    """The objective a reproducer names, as it was when it was found (the metadata it wrote);
    ``origin`` (the reproducer) starts the error when it cannot be built."""
    name = judged_by(name, metadata)
    kind = FROM_METADATA.get(name)
    if kind is not None:
        try:
            return kind.from_metadata(context, metadata)
        except UsageError as error:
            raise UsageError(f"{origin}: {error}") from None
    found = available(context)
    if name not in found:
        raise UsageError(f"{origin}: objective {name!r} is not available for {context.origin}: "
                         f"{NEEDS.get(name, 'define it in objectives()')}.")
    return found[name]()


@dataclass(frozen=True)
class BatchJudgement:
    """Every objective on one batch: the failing examples (each once, the first objective's
    finding), and the guiding objectives' pressure side by side, (B, columns)."""

    findings: list[Finding]
    pressure: torch.Tensor

    def failing(self, size: int, device: torch.device) -> torch.Tensor:
        """Mask (B,) of the examples that failed."""
        mask = torch.zeros(size, dtype=torch.bool, device=device)
        mask[[f.example for f in self.findings]] = True
        return mask


def judge(objectives: list[Objective], execution: Execution,
          guides: list[Objective] | tuple[Objective, ...] = ()) -> BatchJudgement:
    """Every objective's findings (an example fails at most once, first objective wins) and
    the pressure of ``guides`` (a subset of ``objectives``), NaN where one had none to give."""
    seen: set[int] = set()
    findings, pressure = [], {}
    for objective in objectives:
        judged = objective.evaluate(execution)
        pressure[id(objective)] = judged.pressure
        for finding in judged.findings:
            if finding.example not in seen:
                seen.add(finding.example)
                findings.append(finding)
    device = execution.coverage.device
    columns = [_columns(pressure.get(id(guide)), guide.pressure_columns, execution.size, device)
               for guide in guides]
    return BatchJudgement(findings, torch.cat(columns, 1) if columns
                    else torch.zeros(execution.size, 0, device=device))


def _columns(pressure: torch.Tensor | None, width: int, size: int,
             device: torch.device) -> torch.Tensor:
    if pressure is None:
        return torch.full((size, width), float("nan"), device=device)
    return pressure.to(device).float().reshape(size, width)
