"""A training trajectory: the steps from the starting weights, each the examples of its
batch and how their inputs were moved. What a training reproducer saves, as tensors
(``step.<i>.indices``, ``step.<i>.delta.<j>``), so that replaying it trains exactly so."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nnfuzz.errors import ReproducerError


@dataclass(frozen=True)
class Step:
    """One optimizer step: which training examples form the batch (indices into the training
    set), and what was added to each input tensor (None: that input as it is)."""

    indices: torch.Tensor
    deltas: tuple[torch.Tensor | None, ...]

    @property
    def perturbed(self) -> bool:
        return any(delta is not None for delta in self.deltas)


@dataclass(frozen=True)
class Trajectory:
    """Steps from the starting weights; ``seed`` starts torch's random stream (dropout) when
    training along it, so that a replay draws the same."""

    seed: int
    steps: tuple[Step, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def extended(self, steps: list[Step]) -> "Trajectory":
        return Trajectory(self.seed, self.steps + tuple(steps))

    def tensors(self) -> dict[str, torch.Tensor]:
        saved = {}
        for number, step in enumerate(self.steps):
            saved[f"step.{number}.indices"] = step.indices.cpu()
            saved.update({f"step.{number}.delta.{position}": delta.cpu()
                          for position, delta in enumerate(step.deltas) if delta is not None})
        return saved

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor], seed: int, steps: int,
                     inputs: int, origin: str) -> "Trajectory":
        """The trajectory ``tensors`` hold (as :meth:`tensors` wrote them); a
        ReproducerError naming ``origin`` when a step is missing."""
        found = []
        for number in range(steps):
            indices = tensors.get(f"step.{number}.indices")
            if indices is None:
                raise ReproducerError(f"{origin}: not a valid training reproducer: it has no "
                                      f"step {number} of {steps}.")
            found.append(Step(indices, tuple(tensors.get(f"step.{number}.delta.{position}")
                                             for position in range(inputs))))
        return Trajectory(seed, tuple(found))
