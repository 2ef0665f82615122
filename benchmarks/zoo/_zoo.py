"""Shared by the zoo targets: reading their bundled seeds, labels and weights.

Targets import this as ``_zoo`` (nnfuzz puts a target's own folder first on
sys.path). Everything here reads files that ``build.py`` wrote; nothing is
downloaded and nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

ZOO = Path(__file__).resolve().parent
#: The seed corpora of the bundled examples: the project's top-level corpus/ folder.
CORPUS = ZOO.parent.parent / "corpus"

#: The sensor targets' windows (corpus/sensor): temperature readings in kelvin,
#: within the sensor's rated range of -43 to 77 degrees Celsius.
SENSOR_BOUNDS = (230.0, 350.0)
#: Readings per window.
SENSOR_LENGTH = 32
#: Trend classes: the temperature is falling (0), steady (1) or rising (2) over the window.
SENSOR_CLASSES = 3


def load_seeds(name: str) -> torch.Tensor:
    """The seed corpus of a zoo target: corpus/<name>/*.npy (at the project's top level)
    stacked into (N, ...)."""
    files = sorted((CORPUS / name).glob("*.npy"))
    return torch.from_numpy(np.stack([np.load(path, allow_pickle=False) for path in files]))


def load_labels(name: str) -> torch.Tensor:
    """The labels of a seed corpus, aligned with load_seeds(name): labels/<name>.npy."""
    return torch.from_numpy(np.load(ZOO / "labels" / f"{name}.npy", allow_pickle=False))


def load_weights(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """Load weights/<name>.safetensors into ``model`` and return it in eval mode."""
    model.load_state_dict(load_file(str(ZOO / "weights" / f"{name}.safetensors")))
    return model.eval()


class DigitsMLP(nn.Module):
    """The plain 64-32-10 digits classifier, for targets whose bug is not in the model."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.hidden(x / 16)))  # (B, 10)
