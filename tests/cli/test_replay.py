"""``nnfuzz replay``: exit 1 while a reproducer fails, 0 once fixed, 2 for a file that is none."""

from __future__ import annotations

import random
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from targets import DEAD_RELU, write_target

from .support import assert_one_error_line, invoke

#: DEAD_RELU with an epsilon in the std division: the dead-ReLU NaN is gone.
FIXED_DEAD_RELU = DEAD_RELU.replace("/ h.std(1, keepdim=True)", "/ (h.std(1, keepdim=True) + 1e-6)")


@dataclass(frozen=True)
class Fuzzed:
    target: Path
    out: Path
    stderr: str
    crash: Path


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    """DEAD_RELU fuzzed until its first failure, once for the module."""
    folder = tmp_path_factory.mktemp("dead-relu")
    target = write_target(folder, DEAD_RELU)
    out = folder / "out"
    result = invoke("run", target, "--runs", 20000, "--stop-on-failure", "--out", out)
    assert result.exit_code == 1, result.output
    crashes = sorted((out / "crashes").glob("nonfinite-*.safetensors"))
    assert len(crashes) == 1, result.output
    return Fuzzed(target, out, result.stderr, crashes[0])


def test_a_still_failing_reproducer_exits_1_via_the_printed_replay_command(fuzzed: Fuzzed) -> None:
    printed = re.findall(r"replay: (nnfuzz replay .*)$", fuzzed.stderr, flags=re.MULTILINE)
    assert len(printed) == 1, fuzzed.stderr
    argv = shlex.split(printed[0])
    assert argv[:2] == ["nnfuzz", "replay"]
    assert Path(argv[-1]) == fuzzed.crash
    result = invoke(*argv[1:])
    assert result.exit_code == 1, result.output
    assert f"{fuzzed.crash}: still fails: nonfinite" in result.stdout
    assert "Traceback" not in result.output and "ERROR" not in result.output


def test_replaying_the_crashes_folder_exits_1_while_its_reproducer_fails(fuzzed: Fuzzed) -> None:
    result = invoke("replay", fuzzed.target, fuzzed.out / "crashes")
    assert result.exit_code == 1, result.output
    assert "still fails" in result.stdout


def test_the_same_reproducer_against_a_fixed_target_exits_0_and_says_fixed(
        fuzzed: Fuzzed, tmp_path: Path) -> None:
    assert FIXED_DEAD_RELU != DEAD_RELU
    fixed = write_target(tmp_path, FIXED_DEAD_RELU, "fixed_model.py")
    result = invoke("replay", fixed, fuzzed.crash)
    assert result.exit_code == 0, result.output
    assert f"{fuzzed.crash}: fixed" in result.stdout
    assert "Traceback" not in result.output


def _truncated_inside_the_data(valid: bytes, _: Path) -> bytes:
    return valid[:-7]


def _truncated_inside_the_header(valid: bytes, _: Path) -> bytes:
    return valid[:len(valid) // 3]


def _random_bytes(valid: bytes, _: Path) -> bytes:
    return random.Random(0).randbytes(len(valid))


def _empty(valid: bytes, _: Path) -> bytes:
    return b""


def _safetensors_without_metadata(valid: bytes, folder: Path) -> bytes:
    path = folder / "plain.safetensors"
    save_file({"input.0": torch.full((16,), 0.3), "seed.0": torch.full((16,), 0.9)}, str(path))
    return path.read_bytes()


def _npy(valid: bytes, folder: Path) -> bytes:
    path = folder / "input.npy"
    np.save(path, np.full(16, 0.3, dtype=np.float32))
    return path.read_bytes()


@pytest.mark.parametrize("corrupt", [_truncated_inside_the_data, _truncated_inside_the_header,
                                     _random_bytes, _empty, _safetensors_without_metadata, _npy],
                         ids=["truncated-data", "truncated-header", "random-bytes", "empty",
                              "safetensors-without-metadata", "npy-renamed-safetensors"])
def test_a_corrupt_reproducer_is_one_error_line_naming_the_file_and_exit_2(
        fuzzed: Fuzzed, tmp_path: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "nonfinite-0123456789abcdef.safetensors"
    bad.write_bytes(corrupt(fuzzed.crash.read_bytes(), tmp_path))
    result = invoke("replay", fuzzed.target, bad)
    assert_one_error_line(result, str(bad))


def test_a_missing_reproducer_is_one_error_line_naming_it_and_exit_2(
        fuzzed: Fuzzed, tmp_path: Path) -> None:
    missing = tmp_path / "nonfinite-gone.safetensors"
    assert_one_error_line(invoke("replay", fuzzed.target, missing), str(missing))


@pytest.mark.parametrize("content", [[], ["notes.txt"]], ids=["empty", "only-notes"])
def test_a_folder_without_reproducers_is_one_error_line_naming_it_and_exit_2(
        fuzzed: Fuzzed, tmp_path: Path, content: list[str]) -> None:
    folder = tmp_path / "crashes"
    folder.mkdir()
    for name in content:
        (folder / name).write_text("nothing to replay\n")
    assert_one_error_line(invoke("replay", fuzzed.target, folder), str(folder))
