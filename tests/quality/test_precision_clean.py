"""A clean model stays clean for 60 s with each precision and execution-path reference
(issue #27): the default tolerances of autocast, and the path references' float32 ones, do
not call a healthy model's rounding a bug.

The model is a small ``nn.TransformerEncoder`` over continuous tokens with a value head (so
that every kind applies: autocast, the MHA fast path, SDPA, deterministic algorithms). A
classifier is not clean in this sense with autocast: a search that drives the top-two margin
down finds the inputs where bf16 rounding flips the argmax, which is what it is for (README,
*Objectives*). The five runs are one ``nnfuzz run --max-time 60`` each, started together as
processes, so the test costs one minute of wall-clock time; they share the machine's cores,
so each makes fewer executions than alone, and the test asserts that each made some.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.targets import write_target

CLEAN_ENCODER = '''
import torch
from torch import nn

BOUNDS = (-1.0, 1.0)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        # (B, 4, 1): four values per example, not class scores (a last dimension of one)
        return self.head(self.encoder(x).mean(1)).unsqueeze(-1)


def model():
    torch.manual_seed(0)
    return Encoder()


def seeds():
    return torch.rand(32, 6, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
'''

KINDS = ["autocast-bf16", "autocast-fp16", "fastpath-off", "sdpa-math", "deterministic"]


@pytest.mark.slow
def test_a_clean_model_stays_clean_for_60_seconds_with_each_kind(tmp_path: Path) -> None:
    target = write_target(tmp_path, CLEAN_ENCODER)
    runs = {kind: subprocess.Popen(
        [sys.executable, "-m", "nnfuzz", "run", str(target), "--out", str(tmp_path / kind),
         "--reference", kind, "--max-time", "60", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for kind in KINDS}
    said = {kind: run.communicate(timeout=600)[0] for kind, run in runs.items()}
    for kind, run in runs.items():
        assert run.returncode == 0, f"{kind}: {said[kind]}"
        assert not list((tmp_path / kind / "crashes").glob("*.safetensors")), said[kind]
        totals = json.loads((tmp_path / kind / "run.json").read_text())["totals"]
        assert totals["execs"] > 1000, (kind, totals)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no-tf32 needs a CUDA device")
def test_a_clean_model_stays_clean_with_no_tf32(tmp_path: Path) -> None:  # pragma: no cover
    target = write_target(tmp_path, CLEAN_ENCODER)
    run = subprocess.run([sys.executable, "-m", "nnfuzz", "run", str(target), "--out",
                          str(tmp_path / "out"), "--reference", "no-tf32", "--device", "cuda",
                          "--max-time", "60"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
