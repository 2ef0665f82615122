"""What every objective is: a name, and a judgement of each batch (the README's *Objectives*).

An objective is a small plug-in. ``evaluate(execution)`` returns its
:class:`Judgement`: a :class:`Finding` per failing example and, for objectives
that guide the search, their *pressure*, per-example quantities that shrink
as an example gets closer to failing. Both come from one computation and are
returned together, so no objective keeps state between calls. Judging is
batched: an objective computes a mask over the batch and builds findings only
for the (rare) failing rows. The signature of a finding says what makes two
failures the same bug; it is what reproducers are deduplicated by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from nnfuzz.config import DEFAULT_ATOL, DEFAULT_RTOL
from nnfuzz.domain import Inputs, Names
from nnfuzz.execution import Execution
from nnfuzz.reading import primary_output

if TYPE_CHECKING:
    from nnfuzz.references import Reference


@dataclass(frozen=True)
class Finding:
    """One failing example of a batch."""

    example: int
    objective: str
    detail: str
    signature: str
    #: What the reproducer records besides (disagree's ``arbiter``; ``judged_by``).
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


#: The metadata key naming the objective that judges a finding reported under another's name:
#: a reference's NaN is a ``nonfinite`` failure that only ``disagree`` (which runs the
#: reference) can judge again, at minimize and replay.
JUDGED_BY = "judged_by"


def judged_by(objective: str, metadata: dict[str, str]) -> str:
    """The name of the objective that judges a finding (or a reproducer) of ``objective``."""
    return metadata.get(JUDGED_BY, objective)


@dataclass(frozen=True)
class Judgement:
    """One objective on one batch: what failed, and how close each example came."""

    findings: list[Finding]
    #: (B, pressure_columns), lower meaning closer to failing; None where the objective
    #: has no pressure (or nothing to measure it on in this batch).
    pressure: torch.Tensor | None = None


class Objective:
    """Base class of objectives: subclasses set ``name`` and define ``evaluate``."""

    name: ClassVar[str]
    #: Whether its pressure guides the search unless told otherwise: only where
    #: it was measured to help.
    guides_by_default: ClassVar[bool] = False
    #: How many columns of pressure ``evaluate`` returns (0: it has none).
    pressure_columns: ClassVar[int] = 0

    def evaluate(self, execution: Execution) -> Judgement:
        raise NotImplementedError

    def judge(self, execution: Execution) -> list[Finding]:
        """The findings alone (replay and shrinking need no pressure)."""
        return self.evaluate(execution).findings

    def steer(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Optional guidance: a differentiable per-example quantity of the primary
        output that shrinks toward failing; guided mutations step down its gradient."""
        return None

    def descent(self) -> Callable[[Any, torch.Tensor | None], torch.Tensor] | None:
        """Optional: the first pressure column as a differentiable function of what the model
        returned and each example's label (or None), for nnfuzz.descent to walk down. By
        default the steering quantity, which needs no label."""
        steer = self.steer()
        if steer is None:
            return None
        return lambda output, labels: steer(primary_output(output))

    def reproducer_metadata(self) -> dict[str, str]:
        """What a reproducer of this objective must record for replay to rebuild it."""
        return {}

    def finding(self, example: int, detail: str, key: str) -> Finding:
        return Finding(example, self.name, detail, f"{self.name}:{key}")




@dataclass(frozen=True)
class ObjectiveContext:
    """What objectives need beyond one execution; set up once per run."""

    model: torch.nn.Module
    #: The target file's name, which starts error messages about it.
    origin: str = "the target"
    #: The target's ``loss(output, target)``, enabling the ``loss`` objective.
    loss: Callable[..., torch.Tensor] | None = None
    #: The reference the ``disagree`` objective compares against.
    reference: "Reference | None" = None
    #: The target's ``reference()``, from which replay rebuilds a reference.
    reference_factory: Callable[[], Any] | None = None
    #: Tolerances of ``disagree`` for outputs that are not class scores.
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    #: A few real inputs (the seeds) a runtime reference traces the model on, and
    #: torch.compile's mode (--compile-mode).
    example_inputs: Inputs | None = None
    compile_mode: str | None = None
    #: The target's ``objectives()``.
    user: tuple[Callable[..., torch.Tensor], ...] = field(default_factory=tuple)
    #: The inputs' keyword names, for a model called with named inputs.
    names: Names = None
    #: Where a batch holds real tokens, (B, L), for models with a padding mask
    #: (Domain.real_positions): ``disagree`` compares per-position outputs only there.
    real_positions: Callable[[Inputs], torch.Tensor | None] | None = None
