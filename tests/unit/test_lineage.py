"""Lineage: a batch is a value (frozen), and mutation reaches it without reaching the disk."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nnfuzz
from nnfuzz.lineage import Batch

#: The modules that read or write corpus files.
DISK_MODULES = ("nnfuzz.corpus_files", "nnfuzz.storage")


def a_batch() -> Batch:
    return Batch((torch.zeros(3, 2),), torch.arange(3), torch.zeros(3, dtype=torch.long))


def test_a_batch_cannot_be_changed_once_made() -> None:
    batch = a_batch()
    for name in ("inputs", "root", "depth", "vectors", "index"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(batch, name, None)


def test_a_changed_batch_is_a_new_one() -> None:
    batch = a_batch()
    vectors = torch.ones(3, 4)
    changed = dataclasses.replace(batch, vectors=vectors)
    assert batch.vectors is None and changed.vectors is vectors
    assert changed.select(torch.tensor([2])).root.tolist() == [2]


def modules_loaded_by(module: str) -> set[str]:
    """The nnfuzz modules that importing ``module`` loads, in a fresh interpreter (this
    one has imported everything already)."""
    root = Path(nnfuzz.__file__).resolve().parent.parent
    path = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path}
    script = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('nnfuzz')))"
    found = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert module in found
    return set(found)


@pytest.mark.parametrize("module", ["nnfuzz.mutation", "nnfuzz.lineage"])
def test_mutation_and_lineage_do_not_reach_the_disk(module: str) -> None:
    assert not modules_loaded_by(module) & set(DISK_MODULES)
