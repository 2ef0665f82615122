"""Shared by the zoo targets: reading their bundled seeds and weights.

Targets import this as ``_zoo`` (nnfuzz puts a target's own folder first on
sys.path). Everything here reads files that ``build.py`` wrote; nothing is
downloaded and nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

ZOO = Path(__file__).resolve().parent


def load_seeds(name: str) -> torch.Tensor:
    """The seed corpus of a zoo target: corpus/<name>/*.npy stacked into (N, ...)."""
    files = sorted((ZOO / "corpus" / name).glob("*.npy"))
    return torch.from_numpy(np.stack([np.load(path, allow_pickle=False) for path in files]))


def load_weights(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """Load weights/<name>.safetensors into ``model`` and return it in eval mode."""
    model.load_state_dict(load_file(str(ZOO / "weights" / f"{name}.safetensors")))
    return model.eval()
