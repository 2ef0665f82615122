"""A regression MLP (8-32-1, ReLU) whose hidden biases start at -0.2, trained by SGD with
``HYPERPARAMETERS = {"lr": (1e-3, 1.0)}``: a too-large learning rate on a ReLU layer with a
negative bias kills the layer.

The real pattern: a negative bias init (to make the layer sparse, or copied from a recipe)
and an lr from a sweep. At the start 28% of the hidden units are dead on the probe batch (<= 0
on all of the first 64 examples); at its default lr 0.1 (its optimizer()) none more die (never
above 28%), and no definition breaks (10 of 10 shuffles); lr up to 0.8 is clean too (10 of 10).
At lr 1.0 the first steps overshoot (the targets' mean is about 5, the outputs start near 0):
each overshoot drives the biases of the units that pushed the wrong way below all their
inputs, and a unit that is <= 0 on every example gets no gradient, so it never comes back.

Witness (tests/unit/test_training_zoo.py): the top of the range, lr 1.0: at least 90% of the
units are dead at step 4 to 9 (10 of 10 shuffles; shuffle 0: 56%, 72%, 72%, 88%, 88%, 91% at
steps 1-6). The fix is the lr (<= 0.8 here), or clipping the gradient's norm, which bounds the
overshoot. The negative bias only decides how a too-large lr shows: with zero biases, or with
LeakyReLU, lr 1.0 diverges instead (steps 1 and 3-10).

``NNFUZZ_ZOO_FIXED=1`` in the environment switches the fix on (FIXED, read when the file is
loaded: tests/integration/test_train_zoo.py): clipping, the global gradient norm to 1.0
before each step (a hook of optimizer()'s; a reproducer records the lr it trained with, so
a narrower range would not change how it replays). lr 1.0 then trains cleanly, the witness
and 200 plain steps alike (10 of 10 shuffles each; at most 44% of the units dead, shuffles
0-4).
"""

import os

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
BREAKS = "dead"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test
LR = 0.1
HYPERPARAMETERS = {"lr": (1e-3, 1.0)}

_generator = torch.Generator().manual_seed(0)
_X = torch.rand(128, 8, generator=_generator)
_Y = 5.0 + _X[:, 0] - _X[:, 1] + 0.5 * _X[:, 2] * _X[:, 3]


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    nn.init.constant_(net[0].bias, -0.2)
    return net


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    return (output[:, 0] - target) ** 2


def optimizer(parameters):
    parameters = list(parameters)
    sgd = torch.optim.SGD(parameters, lr=LR)
    if FIXED:  # the fix: each step first clips the global gradient norm to 1.0
        def clip(*_):
            nn.utils.clip_grad_norm_(parameters, 1.0)

        sgd.register_step_pre_hook(clip)
    return sgd
