"""Digits MLP with a hand-written sharp softplus: ``log(1 + exp(beta * z)) / beta``.

Bug: a softplus with BETA = 5 is a smooth ReLU, but written out by hand
``exp`` overflows float32 once ``beta * z`` passes ~88.7, that is for a
hidden pre-activation above ~17.7: the unit is Inf, and so are the logits.
``torch.nn.functional.softplus`` returns ``z`` itself above a threshold
for exactly this reason.

Why random search misses it: the seeds' largest pre-activations are 4.2 to
7.3; uniform images reach 13.5 at most (20,000 of them) and noise around
the seeds 9.3. Past 17.7 takes an input built along one unit's weights.

    nnfuzz run benchmarks/zoo/digits_softplus.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: Sharpness of the softplus: the larger, the closer to a ReLU.
BETA = 5.0


class DigitsSoftplusMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.hidden(x / 16)  # (B, 32)
        h = torch.log(1 + torch.exp(BETA * z)) / BETA  # the bug: exp overflows for large z
        return self.head(h)  # (B, 10)


def model() -> nn.Module:
    return load_weights(DigitsSoftplusMLP(), "digits_softplus")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
