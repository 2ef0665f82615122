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


#: HEALTHY's MLP in a model that holds a worker at a moment the test knows: at its
#: ``HOLD_AT``-th forward call in a process (the seeds' set-up calls come first, so the worker
#: is fuzzing), while the file ``go`` does not exist in FOLDER, it writes ``held-PID`` there
#: and waits (polling) for ``go``. With --batch-size 100 a call runs at most 100 examples, so a
#: held worker has made at most ``100 * HOLD_AT`` executions: a share of --runs above that
#: cannot end before the test acts, whatever the machine's speed. A replacement process
#: counts from 0 again and, once ``go`` exists, runs on. ``{hold_here}`` is an expression:
#: whether this process holds (True: every worker).
HELD_UNTIL_GO = '''
import sys
import os
import time
from pathlib import Path

import torch
from torch import nn

BOUNDS = (0.0, 1.0)
FOLDER = Path({folder!r})
HOLD_AT = 20
calls = 0


def ray_actor_index():
    """The index of the nnfuzz Ray actor whose slice of work called this model, else None."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "work" and frame.f_globals.get("__name__") == "nnfuzz.drivers.ray_actors":
            return frame.f_locals["self"].index
        frame = frame.f_back
    return None


class Held(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        global calls
        calls += 1
        if calls == HOLD_AT and not (FOLDER / "go").exists() and ({hold_here}):
            (FOLDER / f"held-{{os.getpid()}}").write_text("")
            while not (FOLDER / "go").exists():
                time.sleep(0.05)
        return self.net(x)


def model():
    torch.manual_seed(0)
    return Held()


def seeds():
    return torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''
#: Executions a worker held by HELD_UNTIL_GO has made at most (HOLD_AT calls of 100).
HELD_EXECS_AT_MOST = 20 * 100


def write_held_target(folder: Path, hold_here: str = "True") -> Path:
    """HELD_UNTIL_GO in ``folder``, holding where ``hold_here`` is true."""
    return write_target(folder, HELD_UNTIL_GO.format(folder=str(folder), hold_here=hold_here))


def held_pid(folder: Path, timeout: float = 120.0) -> int:
    """The pid of the first process that HELD_UNTIL_GO holds in ``folder`` (a generous bound
    for a hang, not a measure of speed)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = sorted(folder.glob("held-*"))
        if held:
            return int(held[0].name.split("-")[1])
        time.sleep(0.05)
    raise AssertionError(f"no process held in {folder} after {timeout}s")
