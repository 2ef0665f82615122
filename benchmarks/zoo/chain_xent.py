"""Digits CNN whose loss is a hand-written cross-entropy, ``-sum(onehot * log(softmax(z)))``.

Bug: the model is fine, its loss is not. Once some class's logit lies ~87
below the largest, its probability is subnormal and the gradient of ``log``
(``1 / p``) overflows; past ~104 it underflows to 0, and ``0 * log(0)`` is
NaN even where the one-hot is 0. The logits stay finite: only the ``loss``
objective sees it.

Why it needs a long chain: trained for 100 Adam steps, the CNN's logits on
the digits spread by at most ~62, and every edge of the domain (the blank
image, a constant, every pixel at a bound) stays below the threshold.
Signed-gradient ascent of the loss crosses it from 9 of the 32 seeds
after 265-358 steps of 0.3% of the bounds' width (13 after 81-113 steps at
1%, 28-38 at 3%); one guided mutation is one such step from a parent drawn
among hundreds, so the chain does not form (nnfuzz without descent walks: 0
of 5 runs of 20,000 executions, benchmarks/results/chains.md).

    nnfuzz run benchmarks/zoo/chain_xent.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_labels, load_seeds, load_weights

BOUNDS = (0.0, 16.0)


class ChainXentCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.view(-1, 1, 8, 8) / 16
        return self.head(self.features(images).flatten(1))  # (B, 10)


def model() -> nn.Module:
    return load_weights(ChainXentCNN(), "chain_xent")


def seeds() -> torch.Tensor:
    return load_seeds("digits")  # (N, 64), 0..16


def targets() -> torch.Tensor:
    return load_labels("digits")


def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example, (N,), written by hand: log of softmax, not log_softmax."""
    onehot = nn.functional.one_hot(target, output.shape[1]).float()
    return -(onehot * torch.log(torch.softmax(output, 1))).sum(1)
