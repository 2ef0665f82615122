"""nnfuzz.fuzz and the CLI end to end on tiny targets."""

from pathlib import Path

from click.testing import CliRunner

import nnfuzz
from nnfuzz.cli import main
from nnfuzz.target import load_target


def test_finds_the_dead_relu_nan_and_saves_a_reproducer_that_replays(dead_relu_target: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = load_target(dead_relu_target)
    result = nnfuzz.fuzz(target.model, target.seeds, bounds=target.bounds, out=out,
                         runs=20_000, stop_on_failure=True, seed=0)
    assert result.failures, "the planted NaN was not found"
    failure = result.failures[0]
    assert failure.objective == "nonfinite"
    assert failure.path is not None and failure.path.parent == out / "crashes"
    assert (failure.inputs[0] < 0.5).all(), "a NaN needs every hidden unit dead"
    replayed = CliRunner().invoke(main, ["replay", str(dead_relu_target), str(failure.path)])
    assert replayed.exit_code == 1, replayed.output
    assert "still fails" in replayed.output


def test_a_healthy_model_gives_no_failure_and_exit_0(healthy_target: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(healthy_target), "--out", str(tmp_path / "o"),
                                       "--runs", "2000"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "run.json").exists()
