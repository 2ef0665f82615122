"""nnfuzz corpus minimize: the fewest inputs that reach the same coverage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from nnfuzz.execution import Executor
from nnfuzz.target import load_target
from tests.targets import inputs_in_folder

from .support import assert_one_error_line, invoke


def merged_corpus(target: Path, tmp_path: Path) -> Path:
    """Corpora of three runs with different seeds, merged: much of it is redundant."""
    merged = tmp_path / "merged"
    for seed in (1, 2, 3):
        assert invoke("run", target, "--out", tmp_path / f"run{seed}", "--runs", 1500,
                      "--seed", seed).exit_code == 0
        assert invoke("corpus", "merge", target, merged,
                      tmp_path / f"run{seed}" / "corpus").exit_code == 0
    return merged


def coverage_of(target: Path, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    loaded = load_target(target)
    with Executor(loaded.model.eval(), source=loaded.path) as executor:
        execution = executor.run(inputs)
    return execution.coverage, execution.stats.reshape(execution.size, -1)


def test_minimize_keeps_every_cell_and_record_of_the_corpus_with_fewer_inputs(
        healthy_target: Path, tmp_path: Path) -> None:
    merged = merged_corpus(healthy_target, tmp_path)
    before = inputs_in_folder(merged)
    result = invoke("corpus", "minimize", healthy_target, merged, "--threshold", "0.05")
    assert result.exit_code == 0, result.output
    after = inputs_in_folder(merged)
    assert 0 < after[0].shape[0] < before[0].shape[0]
    assert f"kept {after[0].shape[0]} of {before[0].shape[0]} input(s)" in result.output

    seeds = load_target(healthy_target).seeds
    all_vectors, all_stats = coverage_of(healthy_target, before)
    kept_vectors, kept_stats = coverage_of(healthy_target, after)
    seed_vectors, seed_stats = coverage_of(healthy_target, seeds)
    reachable = torch.cat((kept_vectors, seed_vectors))
    assert float(torch.cdist(all_vectors, reachable).min(1).values.max()) <= 0.05 + 1e-6, \
        "every input removed lies within the threshold of one kept (or of a seed)"
    everything, remaining = torch.cat((all_stats, seed_stats)), torch.cat((kept_stats, seed_stats))
    # (batches of other sizes round differently in the last bits: compare to 1e-6)
    assert torch.allclose(everything.amin(0), remaining.amin(0), rtol=0, atol=1e-6), \
        "every low record survives"
    assert torch.allclose(everything.amax(0), remaining.amax(0), rtol=0, atol=1e-6), \
        "every high record survives"


def test_minimize_is_deterministic_and_dry_run_removes_nothing(
        healthy_target: Path, tmp_path: Path) -> None:
    merged = merged_corpus(healthy_target, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(merged, copy)
    files = sorted(p.name for p in merged.iterdir())
    dry = invoke("corpus", "minimize", healthy_target, merged, "--dry-run")
    assert dry.exit_code == 0 and "would remove" in dry.output
    assert sorted(p.name for p in merged.iterdir()) == files
    for folder in (merged, copy):
        assert invoke("corpus", "minimize", healthy_target, folder).exit_code == 0
    assert sorted(p.name for p in merged.iterdir()) == sorted(p.name for p in copy.iterdir())
    assert len(list(merged.iterdir())) < len(files)


def test_minimize_uses_the_runs_threshold_and_leaves_other_files_alone(
        healthy_target: Path, tmp_path: Path) -> None:
    assert invoke("run", healthy_target, "--out", tmp_path / "out", "--runs", 1500,
                  "--threshold", "0.123").exit_code == 0
    stray = tmp_path / "out" / "corpus" / "notes.txt"
    stray.write_text("not an input")
    np.save(tmp_path / "out" / "corpus" / "wide.npy", np.zeros(9, dtype=np.float32))
    result = invoke("corpus", "minimize", healthy_target, tmp_path / "out" / "corpus")
    assert result.exit_code == 0, result.output
    assert "at threshold 0.123" in result.output
    assert "WARNING: left alone 2 file(s)" in result.stderr
    assert stray.exists() and (tmp_path / "out" / "corpus" / "wide.npy").exists()


def test_minimizing_a_folder_that_does_not_exist_is_one_error(
        healthy_target: Path, tmp_path: Path) -> None:
    assert_one_error_line(invoke("corpus", "minimize", healthy_target, tmp_path / "nowhere"),
                          "no such folder")
