"""``nnfuzz train``, end to end (issue 26's first slice): a training run finds a NaN loss that
plain training does not reach, saves a reproducer, and replay re-trains it: still fails,
fixed once the bug is, an error when the starting weights differ."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import run_in_process
from nnfuzz.reproducer import Failure, failure_from_bytes, load_failure
from nnfuzz.status import RecordingReporter
from nnfuzz.target import load_target
from nnfuzz.training.engine import Trainer
from nnfuzz.training.setup import TrainConfig, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Step, Trajectory
from tests.cli.support import assert_one_error_line, invoke

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_bce.py"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copy(EXAMPLE, tmp_path / "train_bce.py"))


def test_plain_training_of_the_example_does_not_break_in_64_steps(example: Path) -> None:
    target = load_target(example)
    data = training_set(target)
    for shuffle in range(5):
        order = torch.Generator().manual_seed(shuffle)
        state = TrainingState(target, data, TrainConfig())
        broken = [state.apply(Step(torch.randperm(data.size, generator=order)[:16], (None,)))
                  for _ in range(64)]
        assert broken == [None] * 64


def test_train_finds_the_nan_loss_and_replay_says_still_fails_then_fixed(example: Path) -> None:
    out = example.parent / "out"
    found = invoke("train", example, "--out", out, "--seed", 1, "--runs", 20000,
                   "--stop-on-failure", "--objective", "nonfinite")
    assert found.exit_code == 1, found.stderr
    assert re.search(r"==FAILURE== nonfinite: (NaN|Inf) in the training loss at step", found.stderr)
    [saved] = (out / "crashes").iterdir()
    failure = load_failure(saved)
    steps = int(failure.metadata["steps"])
    assert failure.signature == "train-nonfinite:loss" and 1 < steps <= 64
    assert int(failure.metadata["perturbed_steps"]) >= 1, "plain batches alone do not break it"
    replayed = invoke("replay", example, saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.stdout, replayed.stdout

    example.write_text(example.read_text().replace("LR = 12.0", "LR = 1.0"))
    fixed = invoke("replay", example, saved)
    assert fixed.exit_code == 0 and ": fixed:" in fixed.stdout, fixed.stdout


def test_replay_from_other_starting_weights_is_an_error_not_fixed(example: Path) -> None:
    target = load_target(example)
    result = run_in_process(target, FuzzConfig(seed=1, runs=20000, stop_on_failure=True),
                            out=example.parent / "out", reporter=RecordingReporter(),
                            engine=functools.partial(Trainer, training=TrainConfig()))
    [failure] = result.failures
    example.write_text(example.read_text().replace("torch.manual_seed(0)", "torch.manual_seed(1)"))
    replayed = invoke("replay", example, failure.path)
    assert replayed.exit_code == 2 and "other starting weights" in replayed.stderr


def test_the_same_seed_finds_the_same_failure_and_the_users_model_is_never_trained(
        example: Path) -> None:
    target = load_target(example)
    before = {k: v.clone() for k, v in target.model.state_dict().items()}
    found = []
    for _ in range(2):
        result = run_in_process(target, FuzzConfig(seed=1, runs=20000, stop_on_failure=True),
                                reporter=RecordingReporter(),
                                engine=functools.partial(Trainer, training=TrainConfig()))
        found.append((result.execs, [f.metadata["steps"] for f in result.failures]))
    assert found[0] == found[1] and found[0][1]
    assert all(torch.equal(before[k], v) for k, v in target.model.state_dict().items())


def test_a_target_without_loss_or_targets_is_one_error_naming_what_to_add(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    no_loss = tmp_path / "no_loss.py"
    no_loss.write_text(text.replace("def loss(", "def _unused_loss("))
    assert_one_error_line(invoke("train", no_loss, "--out", tmp_path / "a"),
                          "nnfuzz train needs loss(output, target)")
    neither = tmp_path / "neither.py"
    neither.write_text(text.replace("def loss(", "def _l(").replace("def targets(", "def _t("))
    assert_one_error_line(invoke("train", neither, "--out", tmp_path / "b"),
                          "loss(output, target) and targets()")


steps = st.lists(st.tuples(st.lists(st.integers(0, 63), min_size=1, max_size=16),
                           st.booleans(), st.booleans()), max_size=6)


@given(steps, st.integers(0, 2**31), st.dictionaries(st.sampled_from(["lr", "batch_size"]),
                                                     st.floats(1e-6, 1e3), max_size=2))
@settings(max_examples=30, deadline=None)
def test_a_trajectory_saved_in_a_reproducer_loads_back_bit_identical(
        drawn: list[tuple[list[int], bool, bool]], seed: int, values: dict[str, float]) -> None:
    generator = torch.Generator().manual_seed(seed)
    trajectory = Trajectory(seed, tuple(
        Step(torch.tensor(indices), (torch.randn(len(indices), 8, generator=generator)
                                     if moved else None,),
             torch.randint(64, (len(indices),), generator=generator) if relabelled else None)
        for indices, moved, relabelled in drawn), tuple(sorted(values.items())))
    failure = Failure(inputs=(torch.zeros(8),), seed=(torch.zeros(8),), objective="nonfinite",
                      detail="NaN", signature="train-nonfinite:loss", extra=trajectory.tensors(),
                      metadata=trajectory.metadata())
    loaded = failure_from_bytes(failure.to_bytes(), "test")
    back = Trajectory.from_saved(loaded.extra, loaded.metadata, 1, "test")
    assert (back.seed, back.hyperparameters, len(back)) == \
        (trajectory.seed, trajectory.hyperparameters, len(trajectory))
    for mine, theirs in zip(trajectory.steps, back.steps):
        assert torch.equal(mine.indices, theirs.indices)
        for a, b in ((mine.deltas[0], theirs.deltas[0]), (mine.labels, theirs.labels)):
            assert (a is None) == (b is None)
            assert a is None or torch.equal(a, b)  # type: ignore[arg-type]


@pytest.mark.slow
def test_train_runs_on_the_same_worker_processes_as_run(example: Path) -> None:
    import json

    out = example.parent / "out"
    result = invoke("train", example, "--out", out, "--workers", 2, "--runs", 3000)
    assert result.exit_code in (0, 1), result.stderr
    assert result.stderr.count("INFO: training: the target's optimizer()") == 1, result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["runs"][-1]["workers"] == 2 and record["stop_reason"] == "reached --runs"
    assert record["totals"]["execs"] >= 3000


@pytest.mark.slow
def test_a_training_reproducer_is_a_failing_pytest_item_until_fixed(example: Path) -> None:
    import subprocess
    import sys

    out = example.parent / "out"
    assert invoke("train", example, "--out", out, "--seed", 1, "--runs", 20000,
                  "--stop-on-failure", "--objective", "nonfinite").exit_code == 1
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--nnfuzz-replay", str(out), "--nnfuzz-target", str(example)]
    failing = subprocess.run(command, cwd=example.parent, capture_output=True, text=True)
    assert failing.returncode == 1 and "1 still fails" in failing.stdout, failing.stdout
    example.write_text(example.read_text().replace("LR = 12.0", "LR = 1.0"))
    fixed = subprocess.run(command, cwd=example.parent, capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stdout


def test_a_loss_that_raises_on_a_training_batch_is_the_targets_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(EXAMPLE.read_text().replace(
        "    p = torch.sigmoid(output[:, 0])", "    p = torch.sigmoid(output[:, 5])"))
    assert_one_error_line(invoke("train", broken, "--out", tmp_path / "out"),
                          "loss(output, target) raised IndexError", traceback_expected=True)


def test_train_data_gives_the_examples_when_there_are_no_seeds(tmp_path: Path) -> None:
    given = tmp_path / "given.py"
    given.write_text(EXAMPLE.read_text().replace("def seeds():", "def _seeds():").replace(
        "def targets():", "def train_data():\n    return _X, _Y\n\n\ndef _targets():"))
    target = load_target(given, need_seeds=False)
    data = training_set(target)
    assert data.size == 64 and data.labels.shape == (64,)
    nothing = tmp_path / "nothing.py"
    nothing.write_text(given.read_text().replace("def train_data():", "def _train_data():"))
    assert_one_error_line(invoke("train", nothing, "--out", tmp_path / "out"),
                          "define seeds() (with targets()), or train_data()")


def test_replay_script_reproduces_the_failure_with_plain_pytorch(example: Path) -> None:
    import subprocess
    import sys

    out = example.parent / "out"
    assert invoke("train", example, "--out", out, "--seed", 1, "--runs", 20000,
                  "--stop-on-failure", "--objective", "nonfinite").exit_code == 1
    [saved] = (out / "crashes").iterdir()
    failure = load_failure(saved)
    steps, kind = failure.metadata["steps"], failure.detail.split()[0]
    script = example.parent / "repro.py"
    written = invoke("replay", example, saved, "--script", script)
    assert written.exit_code == 1 and f"wrote {script}" in written.stderr
    text = script.read_text()
    assert "import nnfuzz" not in text and "from nnfuzz" not in text, "plain PyTorch only"
    ran = subprocess.run([sys.executable, str(script)], cwd=example.parent.parent,
                         capture_output=True, text=True)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[-1] == f"step {steps}: {kind} in the training loss"
    example.write_text(example.read_text().replace("LR = 12.0", "LR = 1.0"))
    fixed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert fixed.returncode == 0 and "nothing broke" in fixed.stdout, fixed.stdout
    assert_one_error_line(invoke("replay", example, saved, saved, "--script", script),
                          "--script writes one script")
