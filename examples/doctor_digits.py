"""A digits classifier for ``nnfuzz doctor``: a 64-32-10 MLP on the zoo's digits seeds.

    nnfuzz doctor examples/doctor_digits.py

The seeds are the 32 scikit-learn digits (8x8 images, intensities 0..16)
bundled in corpus/digits; their labels are below, so nothing
needs scikit-learn. ``model()`` returns the model as it would be fuzzed;
``init()`` a freshly initialised one, for the initial-loss check.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "digits"
#: The label of each bundled seed, in file order (seed-000.npy is a 6).
LABELS = [6, 5, 5, 7, 9, 9, 8, 4, 6, 8, 6, 0, 6, 8, 3, 2, 2, 3, 1, 2, 5, 9, 8, 7, 5, 3, 4, 2,
          8, 2, 3, 7]
BOUNDS = (0.0, 16.0)


class DigitsMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.hidden(x / 16)))  # (B, 10)


def init() -> nn.Module:
    torch.manual_seed(0)
    return DigitsMLP()


def model() -> nn.Module:
    return init()


def seeds() -> torch.Tensor:
    return torch.from_numpy(np.stack([np.load(path, allow_pickle=False)
                                      for path in sorted(CORPUS.glob("*.npy"))]))  # (32, 64)


def targets() -> torch.Tensor:
    return torch.tensor(LABELS)


def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target, reduction="none")  # (N,)
