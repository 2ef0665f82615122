"""``nnfuzz train``'s output folder: its trajectories survive a SIGKILL and a resumed run
takes them up again; run.json says which engine ran with which options; one folder holds
one engine's runs (README: *Training*, *Output folder*)."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from nnfuzz.reproducer import load_failure
from nnfuzz.storage import read_tensor_file

from .support import Process, assert_one_error_line, invoke

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_bce.py"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copy(EXAMPLE, tmp_path / "train_bce.py"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.safetensors")} if folder.is_dir() else {}


def _until(condition, what: str, process: Process, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until ``condition()`` holds (a guard against a hung test, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"never {what}:\n{process.stderr}")
        time.sleep(0.05)


def test_a_sigkilled_training_run_loses_no_file_and_resumes_its_trajectories(
        tmp_path: Path, example: Path) -> None:
    out = tmp_path / "out"
    # diverge and dead off: the run then only finds the NaN, and keeps going after it.
    command = ("train", example, "--out", out, "--objective", "nonfinite", "--seed", 3)
    run = Process(*command, "--max-time", 300, cwd=tmp_path)
    try:
        _until(lambda: len(list((out / "corpus").glob("trajectory-*"))) >= 20 and
               (out / "crashes").is_dir() and any((out / "crashes").iterdir()),
               "kept 20 trajectories and a failure", run)
        before_corpus, before_crashes = _files(out / "corpus"), _files(out / "crashes")
    finally:
        run.kill()
    after_corpus, after_crashes = _files(out / "corpus"), _files(out / "crashes")
    assert after_corpus.items() >= before_corpus.items(), "a trajectory was lost or changed"
    assert after_crashes.items() >= before_crashes.items(), "a reproducer was lost or changed"
    for name in after_corpus:  # every file whole: written as a temp file, then renamed
        tensors, metadata = read_tensor_file(out / "corpus" / name)
        assert "vector" in tensors and int(metadata["steps"]) >= 1
    for name in after_crashes:
        assert load_failure(out / "crashes" / name).metadata["engine"] == "train"

    resumed = invoke(*command, "--runs", 50)
    assert resumed.exit_code == 0, resumed.stderr  # the NaN is known: nothing new
    said = [line for line in resumed.stderr.splitlines() if "resumed" in line]
    assert said == [f"INFO: resumed {len(after_corpus)} trajectories from the output folder"]
    record = json.loads((out / "run.json").read_text())
    assert len(record["runs"]) == 2 and record["runs"][0]["stop_reason"] == "running"
    assert record["totals"]["known_failures"] == len(after_crashes)


def test_ctrl_c_ends_a_training_run_with_130_and_its_state_saved(tmp_path: Path,
                                                                  example: Path) -> None:
    out = tmp_path / "out"
    run = Process("train", example, "--out", out, "--objective", "nonfinite", cwd=tmp_path)
    try:
        _until(lambda: len(list((out / "corpus").glob("trajectory-*"))) >= 5,
               "kept 5 trajectories", run)
        run.proc.send_signal(signal.SIGINT)
        code = run.wait()
    finally:
        run.kill()
    assert code == 130, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    assert "interrupted" in run.stderr.splitlines()[-1], run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "interrupted" and record["totals"]["execs"] > 0
    kept = list((out / "corpus").glob("trajectory-*.safetensors"))
    assert len(kept) >= 5 and all("vector" in read_tensor_file(p)[0] for p in kept)
    assert not [p for p in (out / "corpus").iterdir() if not p.name.startswith("trajectory-")]


def test_run_json_records_the_engine_and_its_options_and_the_folder_is_trains_alone(
        tmp_path: Path, example: Path) -> None:
    out = tmp_path / "out"
    result = invoke("train", example, "--out", out, "--runs", 100, "--max-steps", 16,
                    "--dead-share", 0.5, "--objective", "nonfinite", "--objective", "dead")
    assert result.exit_code in (0, 1), result.stderr
    assert "INFO: training objectives: nonfinite, dead (>= 50% of a ReLU layer" in result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == "train" and record["runs"][0]["engine"] == "train"
    options = record["train_options"]
    assert options["max_steps"] == 16 and options["dead_share"] == 0.5
    assert options["objectives"] == ["nonfinite", "dead"]
    assert_one_error_line(invoke("run", example, "--out", out, "--runs", 10),
                          "holds nnfuzz train runs, and this is nnfuzz run")


def test_an_unknown_objective_or_bad_hyperparameters_are_one_error_line(
        tmp_path: Path, example: Path) -> None:
    assert_one_error_line(invoke("train", example, "--out", tmp_path / "a", "--objective", "nan"),
                          "--objective 'nan' is not a training objective: choose nonfinite, ")
    example.write_text(example.read_text() + '\nHYPERPARAMETERS = {"learning_rate": (1, 20)}\n')
    assert_one_error_line(invoke("train", example, "--out", tmp_path / "b", "--runs", 10),
                          "HYPERPARAMETERS names 'learning_rate', which neither the batch nor "
                          "the optimizer (SGD) has")


def test_seeds_the_model_cannot_take_are_one_error_line_naming_the_target(tmp_path: Path) -> None:
    target = tmp_path / "wrong_shape.py"
    target.write_text("import torch\nfrom torch import nn\n\n\ndef model():\n"
                      "    return nn.Linear(4, 2)\n\n\ndef seeds():\n    return torch.rand(8, 5)\n"
                      "\n\ndef targets():\n    return torch.zeros(8).long()\n\n\n"
                      "def loss(output, target):\n"
                      "    return nn.functional.cross_entropy(output, target, reduction='none')\n")
    assert_one_error_line(invoke("train", target, "--out", tmp_path / "out"),
                          "wrong_shape.py: the model raised RuntimeError on the probe batch of 8",
                          traceback_expected=True)
