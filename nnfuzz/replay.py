"""Replaying reproducers: does each saved failure still fail?

A reproducer records its objective and signature; replay runs the model on
the saved input and re-judges with that objective alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import torch

from nnfuzz.domain import infer_domain
from nnfuzz.errors import CorpusError, NnfuzzError, ReproducerError
from nnfuzz.execution import Executor
from nnfuzz.objectives import OBJECTIVES
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.target import Target


class Verdict(enum.Enum):
    STILL_FAILS = "still fails"
    FIXED = "fixed"
    ERROR = "error"


@dataclass(frozen=True)
class ReplayOutcome:
    path: Path
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.path}: {self.verdict.value}: {self.detail}"


def replay_file(target: Target, path: Path, executor: Executor) -> ReplayOutcome:
    """Re-run one reproducer against the target's model."""
    try:
        failure = load_failure(path)
        _check_fits(target, failure)
    except (ReproducerError, CorpusError) as error:
        return ReplayOutcome(path, Verdict.ERROR, str(error).removeprefix(f"{path}: "))
    objective_type = OBJECTIVES.get(failure.objective)
    if objective_type is None:
        return ReplayOutcome(path, Verdict.ERROR, f"unknown objective {failure.objective!r}: "
                                                  "replay it with the nnfuzz that saved it.")
    inputs = tuple(t.unsqueeze(0).to(executor.device) for t in failure.inputs)
    findings = objective_type().judge(executor.run(inputs))
    if not findings:
        return ReplayOutcome(path, Verdict.FIXED, f"{failure.objective} no longer fires "
                                                  f"(was: {failure.detail})")
    finding = findings[0]
    same = "" if finding.signature == failure.signature else f" (was: {failure.detail})"
    return ReplayOutcome(path, Verdict.STILL_FAILS, f"{finding.objective}: {finding.detail}{same}")


def _check_fits(target: Target, failure: Failure) -> None:
    """The input must have the structure of the target's seeds (when it has seeds)."""
    if target.seeds is None:
        return
    domain = infer_domain(target.seeds)
    domain.check(tuple(t.unsqueeze(0) for t in failure.inputs), "the reproducer's input")


def replay(target: Target, paths: list[Path]) -> list[ReplayOutcome]:
    executor = Executor(target.model, source=target.path)
    try:
        with torch.no_grad():
            return [replay_file(target, path, executor) for path in paths]
    finally:
        executor.close()


def exit_code(outcomes: list[ReplayOutcome]) -> int:
    """2 when a file could not be replayed, 1 when one still fails, else 0 (DESIGN §6)."""
    verdicts = {outcome.verdict for outcome in outcomes}
    if Verdict.ERROR in verdicts:
        return NnfuzzError.exit_code
    return 1 if Verdict.STILL_FAILS in verdicts else 0
