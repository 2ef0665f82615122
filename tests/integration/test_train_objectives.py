"""``nnfuzz train``'s objectives and hyperparameters end to end (README: *Training*,
*Training objectives*): a learning rate inside HYPERPARAMETERS that diverges, a ReLU layer
that dies, a target's own train_objectives(); each found, replayed as ``still fails``, and
reproduced by its plain PyTorch script with the same words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnfuzz.reproducer import load_failure
from tests.cli.support import invoke

#: Linear regression on 64 examples: SGD at its own lr 0.05 converges; the declared range
#: reaches lr 3, where each step overshoots and the loss grows.
REGRESSION = '''
import torch
from torch import nn

BOUNDS = (-1.0, 1.0)
HYPERPARAMETERS = {"lr": (1e-3, 3.0)}
_g = torch.Generator().manual_seed(0)
_X = torch.rand(64, 4, generator=_g) * 2 - 1
_Y = _X @ torch.tensor([1.0, -2.0, 0.5, 0.0])


def model():
    torch.manual_seed(0)
    return MODEL


def seeds():
    return _X


def targets():
    return _Y


def loss(output, target):
    return (output[:, 0] - target) ** 2


def optimizer(parameters):
    return torch.optim.SGD(parameters, lr=0.05)
'''
LINEAR = REGRESSION.replace("MODEL", "nn.Linear(4, 1)")
RELU = REGRESSION.replace("MODEL", "nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))")
OWN = LINEAR + '''

def weight_past_4(state):
    return bool(state.model.weight.abs().max() > 4)


def train_objectives():
    return [weight_past_4]
'''


def found(tmp_path: Path, source: str, *options: object) -> tuple[Path, Path, str]:
    """The target written, trained until a failure (run seed 0), its one reproducer."""
    target = tmp_path / "target.py"
    target.write_text(source)
    out = tmp_path / "out"
    result = invoke("train", target, "--out", out, "--seed", 0, "--runs", 20000,
                    "--stop-on-failure", *options)
    assert result.exit_code == 1, result.stderr
    [saved] = (out / "crashes").iterdir()
    return target, saved, result.stderr


def replays_and_scripts(target: Path, saved: Path, words: str) -> None:
    """replay says still fails with ``words``; the plain script stops with them (exit 1)."""
    replayed = invoke("replay", target, saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.stdout, replayed.stdout
    assert words in replayed.stdout
    script = target.parent / "repro.py"
    assert invoke("replay", target, saved, "--script", script).exit_code == 1
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    step = load_failure(saved).detail.rsplit(" at step ", 1)[1]
    assert ran.stdout.splitlines()[-1].startswith(f"step {step}: {words}"), ran.stdout


def test_a_learning_rate_inside_the_declared_range_that_diverges_is_found(tmp_path: Path) -> None:
    target, saved, said = found(tmp_path, LINEAR)
    assert "INFO: hyperparameters searched: lr in [0.001, 3] (default 0.05)" in said
    failure = load_failure(saved)
    assert failure.objective == "diverge" and failure.signature == "train-diverge"
    lr = json.loads(failure.metadata["hyperparameters"])["lr"]
    assert 0.05 < lr <= 3.0, "the default trains cleanly: the search chose a larger lr"
    assert f"lr {lr:.4g})" in said
    replays_and_scripts(target, saved, "probe loss ")


def test_a_relu_layer_killed_by_training_is_found_and_nonfinite_left_out_is_not_said(
        tmp_path: Path) -> None:
    target, saved, said = found(tmp_path, RELU, "--objective", "dead")
    assert "INFO: training objectives: dead (>= 90% of a ReLU layer inactive" in said
    assert "==FAILURE== dead: " in said and "nonfinite" not in said
    failure = load_failure(saved)
    assert failure.signature == "train-dead:1"
    assert failure.metadata["train_objectives"] == "dead"
    replays_and_scripts(target, saved, "9")  # "94% of ReLU layer '1' inactive on the probe"
    assert "% of ReLU layer '1' inactive on the probe" in failure.detail


def test_a_targets_own_train_objective_is_found_by_its_name(tmp_path: Path) -> None:
    target, saved, said = found(tmp_path, OWN, "--objective", "weight_past_4")
    assert "INFO: training objectives: weight_past_4" in said
    failure = load_failure(saved)
    assert failure.signature == "train-weight_past_4"
    replays_and_scripts(target, saved, "objective weight_past_4 returned True")


@pytest.mark.parametrize("source", [LINEAR, RELU])
def test_plain_training_at_the_defaults_breaks_none_of_the_objectives(tmp_path: Path,
                                                                      source: str) -> None:
    target = tmp_path / "target.py"
    target.write_text(source.replace('HYPERPARAMETERS = {"lr": (1e-3, 3.0)}', ""))
    # Without the range, guided moves and label noise at lr 0.05 reach none of them either.
    result = invoke("train", target, "--out", tmp_path / "out", "--seed", 0, "--runs", 3000)
    assert result.exit_code == 0, result.stderr


def test_a_model_that_is_not_seeded_has_its_starting_weights_saved_and_replays(
        tmp_path: Path) -> None:
    # model() unseeded: other weights on each call. The run says so, each reproducer holds
    # the starting weights, and replay, minimize and the script start from them.
    source = LINEAR.replace("    torch.manual_seed(0)\n", "")
    target, saved, said = found(tmp_path, source, "--objective", "diverge")
    assert "INFO: model() gives other weights on each call: each reproducer holds" in said
    failure = load_failure(saved)
    assert {key for key in failure.extra if key.startswith("start.")} == {"start.weight",
                                                                          "start.bias"}
    replays_and_scripts(target, saved, "probe loss ")
    smaller = tmp_path / "smaller" / "repro.safetensors"
    smaller.parent.mkdir()
    assert invoke("minimize", target, saved, "-o", smaller).exit_code == 0
    assert "start.weight" in load_failure(smaller).extra
    assert "still fails" in invoke("replay", target, smaller).stdout


def test_a_targets_own_train_step_is_used_by_the_run_replay_and_script(tmp_path: Path) -> None:
    source = LINEAR + '''

def train_step(model, batch, optimizer):
    inputs, labels = batch  # the inputs as one tuple, as model(*inputs) takes them
    optimizer.zero_grad()
    value = loss(model(*inputs), labels).mean()
    value.backward()
    optimizer.step()
    return value
'''
    target, saved, said = found(tmp_path, source)
    assert "(the target's train_step())" in said
    replays_and_scripts(target, saved, "probe loss ")
