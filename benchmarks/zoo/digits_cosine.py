"""Digits cosine classifier that L2-normalises its embedding without an epsilon.

Bug: the logits are the cosine similarities between a ReLU embedding and
one prototype per class, ``h / ||h||`` with no epsilon. The embedding units
read overall brightness as background (trained so), so on an over-exposed
image, about 13 of 16 bright on average, every unit is dead: ``||h|| = 0``
and ``0 / 0`` makes every logit NaN.

Why random search misses it: the seeds are digits (mean brightness 4 to 6).
Uniform images average 8 +- 0.6 and keep some unit alive (1 of 100,000 is
dead); noise around the seeds leaves them dark. One brightness step adds at
most 4.8 and a saturation step whitens at most 30% of the pixels: getting
every pixel up takes a chain of them.

    nnfuzz run benchmarks/zoo/digits_cosine.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: Cosine similarities lie in [-1, 1]: scaled up so that softmax can be confident.
LOGIT_SCALE = 10.0


class DigitsCosine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.prototypes = nn.Parameter(torch.randn(10, 32))
        #: The bug: no epsilon at inference (training used one, so it never saw a NaN).
        self.epsilon = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.embed(x / 16))  # (B, 32)
        h = h / (h.norm(dim=1, keepdim=True) + self.epsilon)
        prototypes = self.prototypes / self.prototypes.norm(dim=1, keepdim=True)  # (10, 32)
        return LOGIT_SCALE * h @ prototypes.T  # (B, 10)


def model() -> nn.Module:
    return load_weights(DigitsCosine(), "digits_cosine")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
