"""The seeds must pass before a run starts: a failing seed is a broken target, not a
finding. What is wrong with them is said in the seeds' own terms (their shapes, the seed
that raised or failed), since a mistake in seeds() is the likelier cause.

Seeds that already disagree with the reference are the exception: they are dropped, unless
all do, since a model and its bf16 copy rarely agree on every real input.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch

from nnfuzz.domain import Inputs
from nnfuzz.errors import TargetError
from nnfuzz.execution import UnbatchedOutput
from nnfuzz.execution_record import Execution
from nnfuzz.objectives import Objective, judge
from nnfuzz.objectives.base import judged_by

#: A batch of seeds' executions, with the index of its first seed.
Executions = Iterable[tuple[int, Execution]]


def disagreeing_seeds(executions: Executions, objectives: list[Objective],
                      seeds: Inputs) -> list[tuple[int, str, str]]:
    """The seeds that disagree with the reference (index, detail, signature); a TargetError
    for a seed that raises or fails any other objective."""
    disagreeing = []
    for start, execution in executions:
        for example, error in enumerate(execution.raised):
            if error is not None:
                shapes = ", ".join(f"{tuple(t.shape[1:])} {t.dtype}" for t in seeds)
                raise TargetError(f"seed {start + example} makes the model raise an exception, "
                                  f"{error.describe()}: the seeds must be inputs the model "
                                  f"accepts (each seed is {shapes}); fix the seeds or the model.")
        for finding in judge(objectives, execution).findings:
            if judged_by(finding.objective, finding.metadata) != "disagree":
                raise TargetError(f"seed {start + finding.example} already fails "
                                  f"{finding.objective}: {finding.detail}: the seeds must pass; "
                                  "fix the model or the seed.")
            disagreeing.append((start + finding.example, finding.detail, finding.signature))
    return disagreeing


def seeds_to_keep(disagreeing: list[tuple[int, str, str]], count: int,
                  device: torch.device) -> tuple[torch.Tensor, str]:
    """The indices of the seeds that agree, and the warning that says which were dropped; a
    TargetError when none is left, saying what to do for what they fail."""
    if len(disagreeing) == count:
        raise TargetError(f"every seed already fails disagree (seed 0: {disagreeing[0][1]}): "
                          f"{_what_to_do(disagreeing[0][2])}")
    keep = torch.tensor(sorted(set(range(count)) - {row for row, _, _ in disagreeing}),
                        device=device)
    return keep, (f"{len(disagreeing)} of {count} seeds already disagree with the reference "
                  f"(seed {disagreeing[0][0]}: {disagreeing[0][1]}): fuzzing from the other "
                  f"{len(keep)}")


def said_with_seed_shapes(executions: Executions, seeds: Inputs,
                          origin: str) -> Iterator[tuple[int, Execution]]:
    """The seeds' executions; an output with no batch dimension is said with the seeds'
    shapes: one example given without its batch dimension is read as a batch of its first
    dimension."""
    try:
        yield from executions
    except UnbatchedOutput as error:
        shapes = ", ".join(str(tuple(t.shape)) for t in seeds)
        examples = ", ".join(str(tuple(t.shape[1:])) for t in seeds)
        one = ", ".join(str((1, *t.shape)) for t in seeds)
        raise TargetError(
            f"{origin}: the seeds, {shapes}, are read as {seeds[0].shape[0]} examples of shape "
            f"{examples}, and the model's output on them, {error.returned}, has no batch "
            f"dimension: if the seeds are one example, give it a batch dimension first "
            f"(x.unsqueeze(0), shape {one}); seeds() returns N examples stacked along "
            "dimension 0.") from None


def _what_to_do(signature: str) -> str:
    """The advice for seeds that all fail against the reference, by what the first one fails."""
    if signature.startswith("disagree:raised:"):
        return ("the reference cannot run on the seeds at all, a bug of the reference (or of "
                "the execution path it takes) found before any search: fix it, or fuzz with "
                "another --reference.")
    if signature.startswith("nonfinite:reference:"):
        return ("the reference's output is not finite on the seeds, a bug of the reference "
                "found before any search: fix it, or fuzz with another --reference.")
    if ":classes" in signature:  # tolerances play no part in an argmax
        return ("the reference predicts other classes than the model on every seed: its "
                "precision cannot tell this model's scores apart (a float16 copy of scores "
                "below 6e-8 makes them all 0), or the seeds sit on decision boundaries: "
                "give seeds whose top two classes are apart, or another --reference.")
    return "give seeds the model and its reference agree on, or loosen --atol/--rtol."
