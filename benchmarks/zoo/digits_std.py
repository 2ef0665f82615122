"""Digits MLP that normalises its hidden layer by the standard deviation, without an epsilon.

Bug: when every hidden ReLU is dead, the hidden activations are all zero,
their standard deviation is zero, and ``0 / 0`` makes the logits NaN. The
hidden biases are negative, so a dark enough image kills every unit; the
seeds are scikit-learn digits, far from dark, and noise around them never
gets there.

    nnfuzz run benchmarks/zoo/digits_std.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

#: scikit-learn's digits are 8x8 images with integer intensities 0..16.
BOUNDS = (0.0, 16.0)


class DigitsStdMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, 10)
        #: The bug: no epsilon at inference (training used one, so it never saw a NaN).
        self.epsilon = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.hidden(x / 16))  # (B, 32)
        h = (h - h.mean(1, keepdim=True)) / (h.std(1, keepdim=True) + self.epsilon)
        return self.head(h)  # (B, 10)


def model() -> nn.Module:
    return load_weights(DigitsStdMLP(), "digits_std")


def seeds() -> torch.Tensor:
    return load_seeds("digits")  # (N, 64) float32
