"""Objectives: what counts as a failure (DESIGN.md §2).

An objective is a small plug-in: a name and ``judge(execution)``, which
returns a :class:`Finding` per failing example. Judging is batched: an
objective computes a mask over the batch and builds findings only for the
(rare) failing rows. The signature of a finding says what makes two failures
the same bug; it is what reproducers are deduplicated by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from nnfuzz.errors import UsageError
from nnfuzz.execution import Execution


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

    def judge(self, execution: Execution) -> list[Finding]:
        raise NotImplementedError

    def finding(self, example: int, detail: str, key: str) -> Finding:
        return Finding(example, self.name, detail, f"{self.name}:{key}")


class Nonfinite(Objective):
    """NaN or Inf in any output or in any module's output."""

    name = "nonfinite"

    def judge(self, execution: Execution) -> list[Finding]:
        bad = ~torch.isfinite(execution.event_absmax).all(1)
        for tensor in execution.outputs:
            bad |= ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(1)
        bad &= execution.ran
        return [self._describe(execution, int(example)) for example in bad.nonzero().flatten()]

    def _describe(self, execution: Execution, example: int) -> Finding:
        module = execution.first_nonfinite_module(example)
        if module is not None:
            position = execution.event_modules.index(module)
            kind = "NaN" if torch.isnan(execution.event_absmax[example, position]) else "Inf"
            return self.finding(example, f"{kind} in the output of module {module!r} "
                                         "(the first non-finite module in forward order)", module)
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


#: Every objective nnfuzz knows, by the name ``--objective`` takes.
OBJECTIVES: dict[str, Callable[[], Objective]] = {
    Nonfinite.name: Nonfinite,
    RaisedException.name: RaisedException,
}

DEFAULT_OBJECTIVES = ("nonfinite", "exception")


def build_objectives(names: list[str] | tuple[str, ...] | None) -> list[Objective]:
    """The objectives named, or the defaults; an unknown name is a usage error."""
    chosen = list(dict.fromkeys(names or DEFAULT_OBJECTIVES))
    for name in chosen:
        if name not in OBJECTIVES:
            raise UsageError(f"--objective {name!r} is unknown: choose from "
                             f"{', '.join(OBJECTIVES)}.")
    return [OBJECTIVES[name]() for name in chosen]


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
