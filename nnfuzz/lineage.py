"""Lineage: a batch of inputs with the seed each descends from and how far.

The corpus hands out batches, mutation makes children of them and the loop
keeps some: each step builds a new ``Batch``, none changes one, so a batch
sampled once cannot be altered behind the back of whoever holds it. This
module holds no state and touches no disk, so mutation, which needs only
lineage, does not reach the corpus folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nnfuzz.domain import Inputs


@dataclass(frozen=True)
class Batch:
    """Inputs with their lineage: root (B,), depth (B,); and their coverage vectors
    (B, D) once known, which spare the novelty index a lookup for mutants that
    stayed close to their parent (see Coverage.update)."""

    inputs: Inputs
    root: torch.Tensor
    depth: torch.Tensor
    vectors: torch.Tensor | None = None
    #: Sampled from the corpus: which element each row is (credited when a child is kept).
    index: torch.Tensor | None = None

    def select(self, rows: torch.Tensor) -> "Batch":
        return Batch(tuple(t[rows] for t in self.inputs), self.root[rows], self.depth[rows],
                     self.vectors[rows] if self.vectors is not None else None,
                     self.index[rows] if self.index is not None else None)

    def with_vectors(self, vectors: torch.Tensor) -> "Batch":
        """This batch with its coverage vectors: dataclasses.replace, without its cost per batch."""
        return Batch(self.inputs, self.root, self.depth, vectors, self.index)

    @property
    def size(self) -> int:
        return self.inputs[0].shape[0]
