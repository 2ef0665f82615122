"""A training trajectory: its run seed, its hyperparameters, and the steps from the starting
weights, each the examples of its batch, how their inputs were moved and whose labels they
trained with. What a training reproducer saves — the steps as tensors (``step.<i>.indices``,
``step.<i>.delta.<j>``, ``step.<i>.labels``), the rest as metadata — so that replaying it
trains exactly so."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import torch

from nnfuzz.errors import ReproducerError


@dataclass(frozen=True)
class Step:
    """One optimizer step: which training examples form the batch (indices into the training
    set), what was added to each input tensor (None: that input as it is), and whose label
    each example trains with (indices into the training set, None: its own) — label noise
    that keeps labels labels: a class seen, a target some example has."""

    indices: torch.Tensor
    deltas: tuple[torch.Tensor | None, ...]
    labels: torch.Tensor | None = None

    @property
    def moved(self) -> bool:
        return any(delta is not None for delta in self.deltas)

    @property
    def relabelled(self) -> bool:
        return self.labels is not None and bool((self.labels != self.indices).any())

    @property
    def perturbed(self) -> bool:
        return self.moved or self.relabelled


#: Hyperparameters as a trajectory holds them: sorted (name, value) pairs, hashable.
Hyper = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Trajectory:
    """Steps from the starting weights; ``seed`` starts torch's random stream (dropout) when
    training along it, so that a replay draws the same; ``hyperparameters`` are the values
    it trains with where the target's ``HYPERPARAMETERS`` let the search choose (empty: the
    defaults)."""

    seed: int
    steps: tuple[Step, ...] = ()
    hyperparameters: Hyper = ()
    #: The search's, not saved: its steps before this one are drawn plain (no move, no label
    #: noise), and so are its children's.
    plain_until: int = 0

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def values(self) -> dict[str, float]:
        return dict(self.hyperparameters)

    def extended(self, steps: list[Step]) -> "Trajectory":
        return replace(self, steps=self.steps + tuple(steps))

    def prefix(self, length: int) -> "Trajectory":
        return replace(self, steps=self.steps[:length])

    def tensors(self) -> dict[str, torch.Tensor]:
        saved = {}
        for number, step in enumerate(self.steps):
            saved[f"step.{number}.indices"] = step.indices.cpu()
            saved.update({f"step.{number}.delta.{position}": delta.cpu()
                          for position, delta in enumerate(step.deltas) if delta is not None})
            if step.labels is not None:
                saved[f"step.{number}.labels"] = step.labels.cpu()
        return saved

    def metadata(self) -> dict[str, str]:
        return {"trajectory_seed": str(self.seed), "steps": str(len(self)),
                "perturbed_steps": str(sum(step.perturbed for step in self.steps)),
                "hyperparameters": json.dumps(self.values, sort_keys=True)}

    @staticmethod
    def from_saved(tensors: dict[str, torch.Tensor], metadata: dict[str, str], inputs: int,
                   origin: str) -> "Trajectory":
        """The trajectory :meth:`tensors` and :meth:`metadata` wrote; a ReproducerError
        naming ``origin`` when a part is missing or unreadable."""
        def invalid(why: str) -> ReproducerError:
            return ReproducerError(f"{origin}: not a valid training reproducer: {why}.")
        try:
            seed, steps = int(metadata["trajectory_seed"]), int(metadata["steps"])
            hyper = json.loads(metadata.get("hyperparameters", "{}"))
            values = tuple(sorted((str(k), float(v)) for k, v in hyper.items()))
        except (KeyError, ValueError, TypeError, AttributeError):
            raise invalid("its metadata has no readable trajectory_seed, steps and "
                          "hyperparameters") from None
        if not all(math.isfinite(value) for _, value in values):
            raise invalid("a hyperparameter is not a finite number")
        found = []
        for number in range(steps):
            indices = tensors.get(f"step.{number}.indices")
            if indices is None:
                raise invalid(f"it has no step {number} of {steps}")
            found.append(Step(indices, tuple(tensors.get(f"step.{number}.delta.{position}")
                                             for position in range(inputs)),
                              tensors.get(f"step.{number}.labels")))
        return Trajectory(seed, tuple(found), values)
