"""Digits MLP that returns log-probabilities from a hand-written log-softmax.

Bug: the log-softmax is ``z - log(sum(exp(z)))``, without subtracting the
largest logit first. ``exp`` overflows float32 once a logit passes ~88.7:
the sum is Inf and every log-probability is -Inf (NaN where the logit is
itself Inf). ``torch.log_softmax`` subtracts the maximum and never overflows.

Why random search misses it: the seeds' largest logits are 8.6 to 33.5;
uniform images reach 62 at most (20,000 of them) and noise around the seeds
45. Past 88.7 takes an input built along one class's gradient (signed
gradient steps from the seeds reach 108), which the output coverage of the
log-probabilities pulls nnfuzz toward.

    nnfuzz run benchmarks/zoo/digits_logsoftmax.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import DigitsMLP, load_seeds, load_weights

BOUNDS = (0.0, 16.0)


class DigitsLogSoftmaxMLP(DigitsMLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)  # (B, 10)
        return logits - torch.log(torch.exp(logits).sum(1, keepdim=True))  # the bug: no max first


def model() -> nn.Module:
    return load_weights(DigitsLogSoftmaxMLP(), "digits_logsoftmax")


def seeds() -> torch.Tensor:
    return load_seeds("digits")
