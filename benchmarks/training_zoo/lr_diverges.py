"""A small regression MLP (8-32-1, tanh) trained by plain SGD on a squared error, whose
declared learning-rate range reaches past the edge of stability:
``HYPERPARAMETERS = {"lr": (1e-3, 1.0)}``.

The real pattern: a learning-rate sweep or a tuner over a log range chosen by habit. SGD on a
squared error is stable only while the lr is below 2 / (the loss's largest curvature); past
it each step overshoots by more than it corrects, and the error grows geometrically. At its
default lr 0.1 (its optimizer()) it trains cleanly (10 of 10 shuffles), and so it does up to
0.4 (10 of 10); at 0.5 one shuffle of 10 diverges, at 0.6 nine, at 0.7 all ten.

Witness (tests/unit/test_training_zoo.py): the top of the range, lr 1.0: the loss on the probe
batch passes 10x its start at step 2 or 3 (diverge, 10 of 10 shuffles); left to run, the loss
is 1e36 at step 16 and Inf, then NaN, at steps 17-18 (shuffle 0). The fix is a range that
stops below the edge (lr <= 0.4 here), or a warm-up, or gradient clipping.

``NNFUZZ_ZOO_FIXED=1`` in the environment switches the fix on (FIXED, read when the file is
loaded: tests/integration/test_train_zoo.py): clipping, the global gradient norm to 0.5
before each step (a hook of optimizer()'s, so that every loop over it clips; a reproducer
records the lr it trained with, so a narrower range would not change how it replays). lr 1.0
then trains cleanly, the witness and 200 plain steps alike (10 of 10 shuffles each).
"""

import os

import torch
from torch import nn

BOUNDS = (-1.0, 1.0)
BREAKS = "diverge"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test
LR = 0.1
HYPERPARAMETERS = {"lr": (1e-3, 1.0)}

_generator = torch.Generator().manual_seed(0)
_X = 2 * torch.rand(128, 8, generator=_generator) - 1
_Y = torch.sin(_X @ torch.randn(8, generator=_generator)) + 0.1 * _X[:, 0]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    return (output[:, 0] - target) ** 2


def optimizer(parameters):
    parameters = list(parameters)
    sgd = torch.optim.SGD(parameters, lr=LR)
    if FIXED:  # the fix: each step first clips the global gradient norm to 0.5
        def clip(*_):
            nn.utils.clip_grad_norm_(parameters, 0.5)

        sgd.register_step_pre_hook(clip)
    return sgd
