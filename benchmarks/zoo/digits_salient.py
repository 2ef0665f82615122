"""Digits MLP with a feature that averages its salient hidden units: a masked mean.

Bug: besides its hidden units, the head reads the mean activation of the
*salient* units, those above SALIENT: ``sum(h * salient) / count(salient)``,
with no guard for a count of zero. Each image is centred on its own mean
brightness first, so the units see contrast: on a washed-out image (pixel
standard deviation below ~1.2) no unit reaches SALIENT, and ``0 / 0`` makes
the logits NaN.

Why random search misses it: the seeds' pixel standard deviations are 5.1
to 6.8; uniform images have ~4.6 (none of 100,000 is quiet) and noise
around the seeds adds contrast. One contrast step at most halves it: a
digit needs at least three in a row.

    nnfuzz run benchmarks/zoo/digits_salient.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: The activation a hidden unit needs to count as salient.
SALIENT = 1.0


class DigitsSalientMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32 + 1, 10)
        #: The bug: no epsilon at inference (training used one, so it never saw a NaN).
        self.epsilon = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        h = self.relu(self.hidden(centred / 16))  # (B, 32)
        salient = (h > SALIENT).float()
        count = salient.sum(1, keepdim=True)  # the bug: may be 0
        strength = (h * salient).sum(1, keepdim=True) / (count + self.epsilon)
        return self.head(torch.cat([h, strength], 1))  # (B, 10)


def model() -> nn.Module:
    return load_weights(DigitsSalientMLP(), "digits_salient")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
