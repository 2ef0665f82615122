"""nnfuzz minimize: the smallest change from the seed that still fails the same way."""

from __future__ import annotations

from pathlib import Path

import torch

import nnfuzz
from tests.targets import write_target

from .support import assert_one_error_line, invoke

#: NaN exactly when x[0] > 0.9: only one coordinate matters.
ONE_COORDINATE = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        out = self.head(x)
        return torch.where((x[:, :1] > 0.9) & {armed}, out * float("nan"), out)

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    return torch.full((2, 8), 0.1)
'''


def reproducer(folder: Path) -> Path:
    seed = torch.full((8,), 0.1)
    failing = torch.linspace(0.2, 0.8, 8)
    failing[0] = 1.0
    failure = nnfuzz.Failure(inputs=(failing,), seed=(seed,), objective="nonfinite",
                             detail="NaN in the output of module '(model)'",
                             signature="nonfinite:(model)", metadata={"norm": "linf"})
    return failure.save(folder / "nonfinite-one.safetensors")


def test_minimize_keeps_only_what_the_failure_needs_and_it_still_replays(tmp_path: Path) -> None:
    target = write_target(tmp_path, ONE_COORDINATE.replace("{armed}", "True"))
    path = reproducer(tmp_path)
    result = invoke("minimize", target, path, "--output", tmp_path / "kept" / "smaller.safetensors")
    assert result.exit_code == 0, result.output
    smaller_path = tmp_path / "kept" / "smaller.safetensors"
    assert str(smaller_path) in result.output
    assert nnfuzz.load_failure(path).inputs[0][1:].gt(0.1).all(), "--output keeps the original"
    assert "changed values 8 -> 1" in result.stderr
    smaller = nnfuzz.load_failure(smaller_path)
    (x,), (seed,) = smaller.inputs, smaller.seed
    assert torch.equal(x[1:], seed[1:]), "every coordinate but the first is back at the seed"
    assert 0.9 < float(x[0]) < 0.9 + 1e-4, "bisection stops just past the threshold"
    assert smaller.signature == "nonfinite:(model)" and "changed values 8 -> 1" in smaller.metadata["minimized"]
    replayed = invoke("replay", target, smaller_path)
    assert replayed.exit_code == 1 and "still fails" in replayed.output


def test_minimize_is_deterministic(tmp_path: Path) -> None:
    target = write_target(tmp_path, ONE_COORDINATE.replace("{armed}", "True"))
    path = reproducer(tmp_path)
    outputs = []
    for name in ("a", "b"):
        assert invoke("minimize", target, path, "-o", tmp_path / name / "min.safetensors").exit_code == 0
        outputs.append(nnfuzz.load_failure(tmp_path / name / "min.safetensors"))
    assert torch.equal(outputs[0].inputs[0], outputs[1].inputs[0])
    assert outputs[0].metadata == outputs[1].metadata


def test_a_reproducer_that_no_longer_fails_cannot_be_minimized(tmp_path: Path) -> None:
    target = write_target(tmp_path, ONE_COORDINATE.replace("{armed}", "False"))
    result = invoke("minimize", target, reproducer(tmp_path))
    assert_one_error_line(result, "no longer fails", "nothing to minimize")


def test_run_minimizes_new_failures_in_crashes_unless_told_not_to(tmp_path: Path) -> None:
    target = write_target(tmp_path, ONE_COORDINATE.replace("{armed}", "True"))
    saved = {}
    for flag in ("--minimize", "--no-minimize"):
        out = tmp_path / flag
        # A fixed batch size: the search (and so which input fails first) is the same on any
        # machine, where --batch-size auto picks by timing.
        result = invoke("run", target, "--out", out, "--runs", "3000", "--stop-on-failure", flag,
                        "--batch-size", "100")
        assert result.exit_code == 1, result.output
        (path,) = sorted((out / "crashes").glob("*.safetensors"))
        saved[flag] = nnfuzz.load_failure(path)
        assert str(path) in result.stderr, "the printed reproducer is the one in crashes/"
    small, large = saved["--minimize"], saved["--no-minimize"]
    assert "minimized" not in large.metadata
    assert small.signature == large.signature
    (x,), (seed,) = small.inputs, small.seed
    assert int((x != seed).sum()) == 1 and float(x[0]) > 0.9, "only the coordinate the bug needs"
    assert int((large.inputs[0] != large.seed[0]).sum()) > 1
    assert "minimized toward its seed" in invoke("run", target, "--out", tmp_path / "again",
                                                 "--runs", "3000", "--stop-on-failure").stderr


def test_minimize_replaces_the_reproducer_so_its_folder_keeps_one_per_signature(
        tmp_path: Path) -> None:
    target = write_target(tmp_path, ONE_COORDINATE.replace("{armed}", "True"))
    crashes = tmp_path / "out" / "crashes"
    crashes.mkdir(parents=True)
    path = reproducer(crashes)
    result = invoke("minimize", target, path)
    assert result.exit_code == 0, result.output
    assert f"minimized: {path}" in result.output
    assert [p.name for p in crashes.iterdir()] == [path.name]
    assert "changed values 8 -> 1" in nnfuzz.load_failure(path).metadata["minimized"]
    replayed = invoke("replay", target, crashes)
    assert replayed.exit_code == 1 and replayed.output.count("still fails") == 1
    beside = invoke("minimize", target, path, "--output", crashes / "second.safetensors")
    assert_one_error_line(beside, "already holds nonfinite-one.safetensors",
                          "one reproducer per failure")
    assert [p.name for p in crashes.iterdir()] == [path.name]
