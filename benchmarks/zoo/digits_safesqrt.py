"""Digits MLP with a square-root ink feature guarded by ``torch.where``: a NaN gradient.

Bug: the head reads, besides the hidden units, ``sqrt(ink)``, where ``ink``
is the mean brightness above PAPER (blank paper's own), guarded as
``torch.where(ink > 0, torch.sqrt(ink), 0)``. The guard protects the
forward pass, not the backward: ``torch.where`` evaluates both branches,
and on a dark image (``ink <= 0``) the unused branch's gradient is
``0 / (2 * sqrt(ink))``, ``0 / NaN`` or ``0 / 0``: NaN. The outputs and the
loss stay finite; the gradient of the loss with respect to the input is
NaN, which the ``loss`` objective checks.

Why random search misses it: the seeds are digits (mean brightness 4 to 6,
far above PAPER's 0.8); uniform images and noise around the seeds are
brighter still, and one brightness step darkens by at most 4.8 where every
pixel must come down: it takes a chain.

    nnfuzz run benchmarks/zoo/digits_safesqrt.py --stop-on-failure
"""

import torch
import torch.nn.functional as F
from torch import nn

from _zoo import load_labels, load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: Mean brightness of blank paper, as a share of the brightest ink.
PAPER = 0.05


class DigitsInkMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32 + 1, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ink = (x / 16).mean(1, keepdim=True) - PAPER  # (B, 1)
        root = torch.where(ink > 0, torch.sqrt(ink), torch.zeros_like(ink))  # the bug: NaN gradient
        return self.head(torch.cat([self.relu(self.hidden(x / 16)), root], 1))  # (B, 10)


def model() -> nn.Module:
    return load_weights(DigitsInkMLP(), "digits_safesqrt")


def seeds() -> torch.Tensor:
    return load_seeds("digits")


def targets() -> torch.Tensor:
    return load_labels("digits")


def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The usual, stable cross-entropy per example, (N,): the loss itself is not the bug."""
    return F.cross_entropy(output, target, reduction="none")
