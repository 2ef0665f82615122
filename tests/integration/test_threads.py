"""torch keeps the thread count the user set: faiss's own setting never leaks into it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

import nnfuzz
from tests.cli.support import invoke


class ThreadWitness(nn.Module):
    """Records torch's thread count at every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.seen: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return self.linear(x)


def test_the_model_runs_on_the_threads_torch_had_before_and_after_faiss_lookups() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        model = ThreadWitness()
        result = nnfuzz.fuzz(model, torch.rand(16, 4), bounds=(0.0, 1.0), runs=3000)
        assert result.coverage > 16, "faiss must have been asked"
        assert model.seen == {3}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_threads_sets_torchs_threads_for_the_run_and_run_json_records_them(
        tmp_path: Path, healthy_target: Path) -> None:
    before = torch.get_num_threads()
    try:
        result = invoke("run", healthy_target, "--out", tmp_path / "out", "--runs", 300,
                        "--threads", 1)
        assert result.exit_code == 0, result.output
        record = json.loads((tmp_path / "out" / "run.json").read_text())
        assert record["torch_threads"] == 1 and record["options"]["threads"] == 1
    finally:
        torch.set_num_threads(before)
