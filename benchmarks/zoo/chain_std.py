"""Digits MLP that normalises its hidden ReLU features by hand, with no epsilon.

Bug: ``(h - h.mean(1)) / h.std(1)`` is 0 / 0 = NaN once every hidden unit is
dead. Unlike digits_std, nothing was shaped to put that region near an edge:
the MLP is trained as a user trains it (Adam on the digits), about half of
its hidden biases are positive, so the blank image, every constant image and
every image at a bound keep some unit alive; random mutation around the
seeds does not get there either (0 of 10 runs of 20,000 executions). The
region exists: a linear programme finds inputs in BOUNDS that hold every
pre-activation below -0.5 (hidden units' pre-activations are linear in the
input). Reaching it takes a chain of steps that each push the hidden layer's
activations lower, the same way: the guided chains group of the finding
benchmark (benchmarks/finding.py --group chains).

    nnfuzz run benchmarks/zoo/chain_std.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)


class ChainStdMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.hidden(x / 16))  # (B, 32)
        h = (h - h.mean(1, keepdim=True)) / h.std(1, keepdim=True)  # the bug: no epsilon
        return self.head(h)  # (B, 10)


def model() -> nn.Module:
    return load_weights(ChainStdMLP(), "chain_std")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
