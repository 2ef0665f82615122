"""A 784-512-512-10 ReLU classifier on 256 random 28x28 images (0.67M parameters): the
training benchmark's speed row for a model whose arithmetic, not Python, sets the pace.
Not a bug target: it is not in the zoo's TARGETS."""

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
_generator = torch.Generator().manual_seed(0)
_X = torch.rand(256, 784, generator=_generator)
_Y = torch.randint(10, (256,), generator=_generator)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    return nn.functional.cross_entropy(output, target, reduction="none")
