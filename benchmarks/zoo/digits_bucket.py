"""Digits MLP with a per-brightness calibration table that is too short.

Bug: the logits are scaled by a row of a calibration table chosen by the
image's total ink (``sum // 100``). The table has rows for totals below 800;
an image brighter than that indexes past its end and raises IndexError. The
seeds (scikit-learn digits) have totals 185..433: no single mutation of one
brightens it enough.

    nnfuzz run benchmarks/zoo/digits_bucket.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: Total ink per calibration bucket.
BUCKET = 100


class DigitsBucketMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, 10)
        self.calibration = nn.Parameter(torch.ones(8, 10))  # buckets 0..7: totals below 800

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.relu(self.hidden(x / 16)))  # (B, 10)
        bucket = (x.sum(1) // BUCKET).long()  # (B,) the bug: not clamped to the table
        return logits * self.calibration[bucket]


def model() -> nn.Module:
    return load_weights(DigitsBucketMLP(), "digits_bucket")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
