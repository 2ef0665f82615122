"""The training engine's corpus on disk: every trajectory it keeps, a safetensors file in
the output folder's ``corpus/`` (``trajectory-<hash>.safetensors``: the steps as a
reproducer holds them, the trajectory's metadata, and the end state's novelty vector), so
that a killed run resumes its trajectories and workers take in each other's.

Written atomically (temp file, then rename): a kill leaves a file whole or absent. Loading
runs no code (safetensors), and a file that cannot be read, or was trained from other
starting weights, is skipped with one warning, never a crash.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from nnfuzz.errors import ReproducerError
from nnfuzz.storage import atomic_write, content_hash, read_tensor_file, tensor_file_bytes
from nnfuzz.training.trajectory import Trajectory

PREFIX = "trajectory-"


class TrajectoryFolder:
    """``folder``'s trajectories trained from the starting weights ``start_sha256`` (None:
    kept in memory only, as for nnfuzz.fuzz and tests without an output folder)."""

    def __init__(self, folder: Path | None, start_sha256: str, inputs: int) -> None:
        self.folder, self.start_sha256, self.inputs = folder, start_sha256, inputs
        #: File names already read or written: each is taken in once.
        self.seen: set[str] = set()

    def save(self, trajectory: Trajectory, vector: torch.Tensor) -> None:
        if self.folder is None:
            return
        tensors = {**trajectory.tensors(), "vector": vector}
        metadata = {**trajectory.metadata(), "start_sha256": self.start_sha256}
        data = tensor_file_bytes(tensors, metadata)
        name = f"{PREFIX}{content_hash(tuple(tensors.values()))[:16]}.safetensors"
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / name, data)
        self.seen.add(name)

    def new(self) -> list[tuple[Trajectory, torch.Tensor]]:
        """The trajectories saved since the last call (by this run's workers, or a run
        before), oldest name first."""
        if self.folder is None or not self.folder.is_dir():
            return []
        found, skipped = [], []
        for path in sorted(self.folder.glob(f"{PREFIX}*.safetensors")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            try:
                tensors, metadata = read_tensor_file(path)
                vector = tensors.pop("vector")
                trajectory = Trajectory.from_saved(tensors, metadata, self.inputs, path.name)
            except (OSError, ValueError, KeyError, ReproducerError):
                skipped.append(path.name)
                continue
            if metadata.get("start_sha256") == self.start_sha256:
                found.append((trajectory, vector.float()))
        if skipped:
            warnings.warn(f"{len(skipped)} trajectory file(s) in {self.folder} cannot be read "
                          f"(e.g. {skipped[0]}): skipped; delete them to silence this",
                          stacklevel=2)
        return found
