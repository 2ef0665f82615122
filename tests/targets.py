"""Tiny target files for the tests, as source text written into a tmp folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: A 4-8-2 MLP with clean behaviour: no objective fires anywhere in its bounds.
HEALTHY = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

def seeds():
    return torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''

#: NaN when every hidden ReLU is dead: hidden activations divided by their std.
#: The hidden layer is diagonal, unit i computing d_i * (x_i - 0.5) on inputs in
#: [0, 1] with distinct d_i (so live units never tie and the spread is never 0
#: by accident): all units die only when every coordinate is below 0.5; the
#: seeds have every coordinate in [0.8, 1].
DEAD_RELU = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(16, 16)
        self.relu = nn.ReLU()
        self.head = nn.Linear(16, 3)
        with torch.no_grad():
            scale = torch.linspace(1.0, 2.5, 16)
            self.hidden.weight.copy_(torch.diag(scale))
            self.hidden.bias.copy_(-0.5 * scale)
            self.head.weight.copy_(torch.linspace(-1, 1, 48).view(3, 16))
            self.head.bias.zero_()

    def forward(self, x):
        h = self.relu(self.hidden(x))
        h = (h - h.mean(1, keepdim=True)) / h.std(1, keepdim=True)
        return self.head(h)

def model():
    return Net()

def seeds():
    g = torch.Generator().manual_seed(0)
    return 0.8 + 0.2 * torch.rand(8, 16, generator=g)
'''


def write_target(folder: Path, source: str, name: str = "model.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


#: A fresh classifier whose head is initialised to zero: every output is 0, so coverage must
#: move to a layer that varies over the seeds.
ZERO_HEAD = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class ZeroHead(nn.Module):
    """A fresh classifier whose head is initialised to zero: every output is 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 12), nn.ReLU())
        self.head = nn.Linear(12, 5)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.body(x))

def model():
    return ZeroHead()

def seeds():
    return torch.rand(16, 8, generator=torch.Generator().manual_seed(1))
'''


def inputs_in_folder(folder: Path):  # type: ignore[no-untyped-def]
    """The readable inputs of a corpus folder stacked into a batch, or None if it has none."""
    from nnfuzz.corpus_files import named_inputs_in_folder

    found = named_inputs_in_folder(folder)
    return found[0] if found is not None else None
