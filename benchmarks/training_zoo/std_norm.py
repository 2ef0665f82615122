"""A classifier that standardises each batch's features inside forward(),
``(x - x.mean(0)) / x.std(0)``, with no epsilon: batch normalisation written by hand, or
"normalise the inputs" done per batch rather than with the training set's statistics.

Feature 0 is zero-inflated, like an amount that is 0 for many records (overtime hours,
purchases last month): it is 0, its low bound, in 74 of the 128 examples, else in [0.2, 1].
A batch of 16 drawn at random has it 0 throughout about once in 14,000 batches, so 64 steps of
Adam at lr 0.01 never break (10 of 10 shuffles), while a long run meets it by chance. In such
a batch the column is constant: its std is 0, ``(0 - 0) / 0`` is NaN, and so is the loss.

Witness (tests/unit/test_training_zoo.py): 20 plain steps, then batches drawn only among the 74
examples whose feature 0 is at its bound (a choice of examples; nothing is moved): a NaN loss
at step 21 (10 of 10 shuffles). GRIST's move does not reach it: the gradient of a standardised
column sums to zero over the batch (a shift of the column changes nothing), so the move pushes
some examples up and others down; it takes choosing the batch, or moving a feature to its
bound. The fix is an epsilon, ``x.std(0) + 1e-5`` (nn.BatchNorm1d's eps): the same
trajectories stay clean (10 of 10).
``NNFUZZ_ZOO_FIXED=1`` in the environment switches the fix on (FIXED, read when the file is
loaded: tests/integration/test_train_zoo.py).
"""

import os

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
BREAKS = "nonfinite"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test
LR = 0.01
FEATURES, HIDDEN, EXAMPLES = 8, 16, 128

_generator = torch.Generator().manual_seed(0)
_X = torch.rand(EXAMPLES, FEATURES, generator=_generator)
_ZERO = torch.rand(EXAMPLES, generator=_generator) < 0.5
_X[:, 0] = torch.where(_ZERO, 0.0, 0.2 + 0.8 * _X[:, 0])
_Y = ((_X[:, 0] > 0).float() + _X[:, 1] - _X[:, 2] > 0.5).long()


class Standardize(nn.Module):
    """Each feature to mean 0 and std 1 over the batch (in eval mode too: no running stats)."""

    def forward(self, x):
        return (x - x.mean(0)) / (x.std(0) + 1e-5 if FIXED else x.std(0))


def model():
    torch.manual_seed(0)
    return nn.Sequential(Standardize(), nn.Linear(FEATURES, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 2))


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    return nn.functional.cross_entropy(output, target, reduction="none")


def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=LR)
