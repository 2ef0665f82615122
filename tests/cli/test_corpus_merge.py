"""nnfuzz corpus merge: corpora from several runs folded into one, each input once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnfuzz.storage import read_input_file

from .support import invoke


def test_merging_two_runs_keeps_each_input_once_and_skips_what_does_not_fit(
        healthy_target: Path, tmp_path: Path) -> None:
    for seed in (1, 2):
        result = invoke("run", healthy_target, "--out", tmp_path / f"run{seed}", "--runs", 1500,
                        "--seed", seed)
        assert result.exit_code == 0, result.output
    first = {p.name for p in (tmp_path / "run1" / "corpus").iterdir()}
    second = {p.name for p in (tmp_path / "run2" / "corpus").iterdir()}
    stray = tmp_path / "stray"
    stray.mkdir()
    np.save(stray / "wide.npy", np.zeros(9, dtype=np.float32))  # the target's inputs are (4,)
    merged = tmp_path / "merged"
    result = invoke("corpus", "merge", healthy_target, merged, tmp_path / "run1" / "corpus",
                    tmp_path / "run2" / "corpus", tmp_path / "run1" / "corpus", stray)
    assert result.exit_code == 0, result.output
    assert {p.name for p in merged.iterdir()} == first | second
    assert f"merged: {len(first | second)} new input(s)" in result.output
    assert "WARNING: skipped 1 file(s)" in result.stderr and "wide.npy" in result.stderr
    for path in merged.iterdir():
        read_input_file(path)
    again = invoke("corpus", "merge", healthy_target, merged, tmp_path / "run2" / "corpus")
    assert "merged: 0 new input(s)" in again.output
    resumed = invoke("run", healthy_target, "--out", tmp_path / "run3", "--corpus", merged,
                     "--runs", 100)
    assert resumed.exit_code == 0, resumed.output


def test_a_merge_where_no_file_fits_is_one_error_line_and_exit_2(
        healthy_target: Path, tmp_path: Path) -> None:
    stray, empty, merged = tmp_path / "stray", tmp_path / "empty", tmp_path / "merged"
    stray.mkdir()
    empty.mkdir()
    for width in (9, 11):
        np.save(stray / f"wide{width}.npy", np.zeros(width, dtype=np.float32))
    result = invoke("corpus", "merge", healthy_target, merged, stray)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ERROR: nothing merged from") and "none of the 2 file(s)" in line
    assert list(merged.iterdir()) == []
    result = invoke("corpus", "merge", healthy_target, merged, empty)
    assert result.exit_code == 2 and "they hold no input files" in result.stderr
