"""A logistic classifier whose binary cross-entropy is written by hand,
``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(z)`` (a copy of examples/train_bce.py,
so that the zoo stands alone).

It trains cleanly on its own data: 64 steps of SGD at lr 12 on batches of 16 never break (10
of 10 shuffles). But once training has made the classifier confident, a batch whose inputs sit
nearer the bounds gives some example a logit past ~17, where sigmoid rounds to exactly 1 in
float32: ``log(1 - p)`` is ``log(0) = -inf``, and the loss is Inf (a negative example) or
``0 * -inf = NaN`` (a positive one).

Witness (tests/unit/test_training_zoo.py): 40 plain steps, then each batch moved once by half
the bounds' width along the sign of the gradient of the outputs' magnitude: the loss is
non-finite at step 41 or 42 (10 of 10 shuffles). The fix is torch's
``binary_cross_entropy_with_logits``: the same trajectories stay finite (10 of 10), though in
5 of 10 the probe loss then passes 10x its start (training at lr 12 on moved inputs unlearns).
"""

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
BREAKS = "nonfinite"
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
