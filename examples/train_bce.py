"""A target for ``nnfuzz train``: a logistic classifier whose binary cross-entropy is written
by hand, ``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(z)``.

It trains cleanly on its own data: 64 steps of SGD at lr 12 on batches of 16 never break
(10 of 10 shuffles checked). But once training has made the classifier confident, a batch
whose inputs sit nearer the bounds gives some positive example a logit past ~17, where
sigmoid rounds to exactly 1 in float32: ``(1 - y) * log(1 - p)`` is then ``0 * log(0)``,
NaN, and so is the loss. torch's ``binary_cross_entropy_with_logits`` is the fix.
"""

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
LR = 12.0

_generator = torch.Generator().manual_seed(0)
_X = 0.5 * torch.rand(64, 8, generator=_generator)
_Y = (_X[:, 0] + _X[:, 1] > 0.5).float()


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 1))


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    p = torch.sigmoid(output[:, 0])
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))


def optimizer(parameters):
    return torch.optim.SGD(parameters, lr=LR)
