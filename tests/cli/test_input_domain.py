"""The first lines of a run say the domain searched: every input's kind, bounds and where
they came from, and a warning where the target leaves a region out of reach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.targets import write_target

from .support import assert_one_error_line, invoke

NO_BOUNDS = '''
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

def seeds():
    return torch.rand(16, 4, generator=torch.Generator().manual_seed(0)) - 0.5
'''

NAMED = '''
import nnfuzz
import torch
from torch import nn

INPUTS = {"ids": nnfuzz.Tokens(vocab=50, pad=0), "keep": nnfuzz.Mask(follows="ids")}
BOUNDS = {"scale": (0.0, 2.0)}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, ids, keep, scale):
        pooled = (self.embed(ids) * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled * scale)

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    ids = torch.randint(1, 50, (8, 6), generator=torch.Generator().manual_seed(0))
    ids[:, 4:] = 0
    return {"ids": ids, "keep": ids != 0, "scale": torch.ones(8, 1)}
'''


def test_a_float_input_without_bounds_is_warned_about_with_its_range_and_the_fix(
        tmp_path: Path) -> None:
    result = invoke("run", write_target(tmp_path, NO_BOUNDS), "--out", tmp_path / "out",
                    "--runs", 500)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    info = next(line for line in lines if line.startswith("INFO: input 0:"))
    assert "continuous in [-0.4" in info and "(the seeds' min and max)" in info
    [warning] = [line for line in lines if line.startswith("WARNING:")]
    assert warning.startswith("WARNING: input 0: its bounds [-0.4")
    assert "never tried" in warning and "BOUNDS = (low, high)" in warning
    assert lines.index(warning) < next(i for i, line in enumerate(lines) if "threshold" in line)


def test_named_inputs_print_their_declared_kinds_and_bounds_and_no_warning(tmp_path: Path) -> None:
    result = invoke("run", write_target(tmp_path, NAMED), "--out", tmp_path / "out", "--runs", 500)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert ("INFO: input 'ids': (6,) int64, tokens 0..49 (INPUTS: Tokens(vocab=50, pad=0)); "
            "pad 0 (INPUTS), at the end, as every seed") in lines
    assert ("INFO: input 'keep': (6,) bool, mask on real tokens, recomputed after every mutation "
            "(INPUTS: follows 'ids')") in lines
    assert "INFO: input 'scale': (1,) float32, continuous in [0, 2] (BOUNDS)" in lines
    assert not [line for line in lines if line.startswith("WARNING:")], result.stderr


def test_inputs_that_name_no_input_are_one_error_line(tmp_path: Path) -> None:
    source = NAMED.replace('"keep": nnfuzz.Mask(follows="ids")', '"kept": nnfuzz.Flags()')
    result = invoke("run", write_target(tmp_path, source), "--out", tmp_path / "out")
    assert_one_error_line(result, "model.py", "INPUTS names input 'kept'", "ids, keep, scale")


@pytest.mark.slow
def test_workers_say_the_domain_and_its_warning_once(tmp_path: Path) -> None:
    target = write_target(tmp_path, NO_BOUNDS)
    done = subprocess.run([sys.executable, "-m", "nnfuzz", "run", str(target), "--out",
                           str(tmp_path / "out"), "--workers", "2", "--runs", "400"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("INFO: input 0:") == 1, done.stderr
    assert done.stderr.count("seeds' min and max, because") == 1, done.stderr
