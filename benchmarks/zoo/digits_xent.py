"""Digits MLP trained with a hand-written cross-entropy: ``-log(softmax(z)[label])``.

Bug: the model is fine, its loss is not. ``softmax`` then ``log`` loses
what ``log_softmax`` keeps: once the label's logit is ~104 below the
largest, its probability underflows to 0 and the loss is Inf. Before that,
from a gap of ~87, the probability is subnormal and the gradient of ``log``
(``1 / p``) overflows, so the gradient of the loss with respect to the input
turns NaN first. The model's outputs, the logits, stay finite: only the
``loss`` objective sees the bug (it checks the loss and its gradients).

Why random search misses it: every seed is classified correctly (its
label's logit is the largest); the bug needs an input that the model gives
to another class by a logit gap of ~87 or more, which only steps along that
gap's gradient reach (nnfuzz keeps inputs that raise the loss).

    nnfuzz run benchmarks/zoo/digits_xent.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import DigitsMLP, load_labels, load_seeds, load_weights

BOUNDS = (0.0, 16.0)


def model() -> nn.Module:
    return load_weights(DigitsMLP(), "digits_xent")


def seeds() -> torch.Tensor:
    return load_seeds("digits")


def targets() -> torch.Tensor:
    return load_labels("digits")  # (N,) int64


def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example, (N,); the bug: log of softmax, not log_softmax."""
    probabilities = torch.softmax(output, 1)  # (N, 10)
    return -torch.log(probabilities.gather(1, target.view(-1, 1)).squeeze(1))
