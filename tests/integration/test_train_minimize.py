"""``nnfuzz minimize`` on a training reproducer (nnfuzz.training.shrink): a trajectory with
no more steps and fewer perturbed ones that still breaks the same way, replayed and scripted
like the original; hyperparameters the failure does not need go back to their defaults; one
that no longer fails is an error, not an empty minimization."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnfuzz.reproducer import load_failure
from nnfuzz.target import load_target
from nnfuzz.training.shrink import minimize_trajectory
from tests.cli.support import assert_one_error_line, invoke

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_bce.py"


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """examples/train_bce.py and the reproducer ``nnfuzz train --seed 1`` finds for it."""
    folder = tmp_path_factory.mktemp("train_minimize")
    example = Path(shutil.copy(EXAMPLE, folder / "train_bce.py"))
    result = invoke("train", example, "--out", folder / "out", "--seed", 1, "--runs", 20000,
                    "--stop-on-failure", "--objective", "nonfinite")
    assert result.exit_code == 1, result.stderr
    [saved] = (folder / "out" / "crashes").iterdir()
    return example, saved


def counts(path: Path) -> tuple[int, int]:
    metadata = load_failure(path).metadata
    return int(metadata["steps"]), int(metadata["perturbed_steps"])


def test_minimize_shortens_the_trajectory_and_it_still_fails_the_same_way(
        found: tuple[Path, Path]) -> None:
    example, saved = found
    smaller = saved.parent.parent / "minimized" / saved.name
    result = invoke("minimize", example, saved, "-o", smaller)
    assert result.exit_code == 0, result.stderr
    assert f"minimized: {smaller}" in result.stdout and "perturbed steps" in result.stderr
    (steps, perturbed), (steps_after, perturbed_after) = counts(saved), counts(smaller)
    # Measured at --seed 1: 4 steps (all perturbed) -> 4 steps, 2 perturbed.
    assert steps_after <= steps and perturbed_after < perturbed, (counts(saved), counts(smaller))
    before, after = load_failure(saved), load_failure(smaller)
    assert after.signature == before.signature and after.metadata["engine"] == "train"
    assert f"steps {steps} -> {steps_after}" in after.metadata["minimized"]
    assert after.metadata["start_sha256"] == before.metadata["start_sha256"]

    script = example.parent / "replay_minimized.py"
    replayed = invoke("replay", example, smaller, "--script", script)
    assert replayed.exit_code == 1 and ": still fails: " in replayed.stdout, replayed.output
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"step {steps_after}: {after.detail.split()[0]} in the training loss" in ran.stdout, \
        ran.stdout

    again = minimize_trajectory(load_target(example), before)  # the same one again: the same
    assert sorted(again.extra) == sorted(after.extra)
    assert all(torch.equal(again.extra[key], after.extra[key]) for key in after.extra)
    assert all(torch.equal(a, b) for a, b in zip(again.inputs, after.inputs))


def test_hyperparameters_the_failure_does_not_need_go_back_to_their_defaults(
        found: tuple[Path, Path]) -> None:
    example, saved = found
    tuned = example.parent / "train_tuned.py"
    ranges = 'HYPERPARAMETERS = {"weight_decay": (0.0, 1e-3), "momentum": (0.0, 0.5)}'
    tuned.write_text(example.read_text().replace("LR = 12.0", f"LR = 12.0\n{ranges}"))
    failure = load_failure(saved)  # as if the search had drawn values the NaN does not need
    failure.metadata["hyperparameters"] = json.dumps({"momentum": 0.001, "weight_decay": 1e-6})
    (example.parent / "drawn").mkdir()
    drawn = failure.save(example.parent / "drawn" / saved.name)
    assert ": still fails: " in invoke("replay", tuned, drawn).stdout

    result = invoke("minimize", tuned, drawn)  # replaces it
    assert result.exit_code == 0, result.stderr
    smaller = load_failure(drawn)
    assert json.loads(smaller.metadata["hyperparameters"]) == {"momentum": 0.0, "weight_decay": 0.0}
    assert "hyperparameters off their defaults 2 -> 0" in smaller.metadata["minimized"]
    assert ": still fails: " in invoke("replay", tuned, drawn).stdout


def test_a_training_reproducer_that_no_longer_fails_is_an_error(found: tuple[Path, Path]) -> None:
    example, saved = found
    fixed = example.parent / "train_fixed.py"
    fixed.write_text(example.read_text().replace("LR = 12.0", "LR = 1.0"))
    before = saved.read_bytes()
    assert_one_error_line(invoke("minimize", fixed, saved), "no longer fails",
                          "nothing to minimize")
    assert saved.read_bytes() == before
