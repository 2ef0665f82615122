"""Storage: atomic writes, content hashes, and reading corpus input files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnfuzz.storage import (TEMP_PREFIX, atomic_write, content_hash, read_input_file,
                            tensor_file_bytes)

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(first=st.binary(max_size=2000), second=st.binary(max_size=2000))
def test_atomic_write_leaves_exactly_the_content_and_no_temporary_file(
        first: bytes, second: bytes, tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    atomic_write(path, first)
    assert path.read_bytes() == first
    atomic_write(path, second)
    assert path.read_bytes() == second
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_failed_atomic_write_removes_its_temporary_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "file.bin"
    atomic_write(path, b"old")

    def broken_replace(source: str, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nnfuzz.storage.os.replace", broken_replace)
    from nnfuzz import OutputError
    with pytest.raises(OutputError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.int32, torch.int64,
                                  torch.uint8]))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    rng = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return (torch.rand(shape, generator=rng) * 100).to(dtype)


@SETTINGS
@given(tensors())
def test_equal_tensors_have_equal_content_hashes(tensor: torch.Tensor) -> None:
    copy = tensor.clone()
    assert content_hash((tensor,)) == content_hash((copy,))
    # A non-contiguous view of the same values hashes the same as well.
    transposed = tensor.t().contiguous().t() if tensor.dim() == 2 else tensor
    assert content_hash((transposed,)) == content_hash((tensor,))


@SETTINGS
@given(tensors(), st.data())
def test_changing_one_value_changes_the_content_hash(tensor: torch.Tensor,
                                                      data: st.DataObject) -> None:
    changed = tensor.clone()
    index = data.draw(st.integers(0, changed.numel() - 1))
    changed.view(-1)[index] = changed.view(-1)[index] + 1
    if torch.equal(changed, tensor):  # e.g. float16 too coarse for +1: no change to detect
        return
    assert content_hash((changed,)) != content_hash((tensor,))


def test_the_same_bytes_with_another_dtype_hash_differently() -> None:
    values = torch.arange(8, dtype=torch.int32)
    as_float = values.view(torch.float32)
    assert values.numpy().tobytes() == as_float.numpy().tobytes()
    assert content_hash((values,)) != content_hash((as_float,))


def test_the_same_bytes_with_another_shape_hash_differently() -> None:
    values = torch.arange(12.0)
    assert content_hash((values.view(3, 4),)) != content_hash((values.view(4, 3),))
    assert content_hash((values,)) != content_hash((values.view(1, 12),))


def test_the_same_tensors_split_differently_across_inputs_hash_differently() -> None:
    values = torch.arange(6.0)
    assert content_hash((values,)) != content_hash((values[:3], values[3:]))


def test_read_input_file_reads_a_npy_array(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "input.npy"
    np.save(path, array)
    inputs, metadata = read_input_file(path)
    assert len(inputs) == 1
    assert inputs[0].dtype == torch.float32
    assert torch.equal(inputs[0], torch.from_numpy(array))
    assert metadata == {}


def test_read_input_file_reads_a_fortran_ordered_npy_array(tmp_path: Path) -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4))
    path = tmp_path / "input.npy"
    np.save(path, array)
    inputs, _ = read_input_file(path)
    assert torch.equal(inputs[0], torch.arange(12).view(3, 4))


def test_read_input_file_refuses_a_pickled_object_array(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        read_input_file(path)


def test_read_input_file_refuses_a_npy_file_that_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "broken.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError):
        read_input_file(path)


def test_read_input_file_reads_the_numbered_inputs_and_metadata_of_a_safetensors_file(
        tmp_path: Path) -> None:
    tensors = {"input.0": torch.rand(2, 3), "input.1": torch.tensor([4, 5])}
    path = tmp_path / "x.safetensors"
    path.write_bytes(tensor_file_bytes(tensors, {"root": "abc", "mutations": "2"}))
    inputs, metadata = read_input_file(path)
    assert torch.equal(inputs[0], tensors["input.0"])
    assert torch.equal(inputs[1], tensors["input.1"])
    assert metadata == {"root": "abc", "mutations": "2"}


@pytest.mark.parametrize("array", [
    np.array(["ab", "cd"]),
    np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]),
    np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
], ids=["strings", "structured", "datetimes"])
def test_read_input_file_refuses_a_npy_array_torch_cannot_hold_with_value_error(
        array: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "odd.npy"
    np.save(path, array)
    with pytest.raises(ValueError):
        read_input_file(path)


def test_written_files_have_the_mode_the_umask_gives_not_mkstemps_0600(tmp_path: Path) -> None:
    import os
    import stat

    from nnfuzz.storage import atomic_write

    previous = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.bin", b"data")
        os.umask(0o077)
        atomic_write(tmp_path / "b.bin", b"data")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o600
