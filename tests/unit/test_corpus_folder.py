"""CorpusFolder: the one owner of a corpus folder's files (names, saves, deletes, lists, reads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nnfuzz import OutputError
from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.storage import TEMP_PREFIX, content_hash


def an_input(value: float = 0.5) -> tuple[torch.Tensor, ...]:
    return (torch.full((3,), value), torch.arange(2))


def test_an_input_is_saved_under_its_content_hash_and_reads_back(tmp_path: Path) -> None:
    folder = CorpusFolder(tmp_path)
    assert folder.save(an_input(), None, {"root": "r", "mutations": "2"})
    name = f"{content_hash(an_input())}.safetensors"
    assert folder.names() == [name]
    assert folder.digest_of(name) == bytes.fromhex(content_hash(an_input()))
    [(path, inputs, metadata, problem)] = folder.scan(None)
    assert path == tmp_path / name and problem is None
    assert all(torch.equal(a, b) for a, b in zip(inputs, an_input()))  # type: ignore[arg-type]
    assert metadata == {"root": "r", "mutations": "2"}


def test_an_input_saved_twice_is_stored_once(tmp_path: Path) -> None:
    folder = CorpusFolder(tmp_path)
    assert folder.save(an_input(), None, {"mutations": "1"})
    before = folder.files()
    assert not folder.save(an_input(), None, {"mutations": "7"})
    assert not folder.save_bytes(folder.names()[0], b"other bytes")
    assert folder.files() == before


def test_a_save_is_written_whole_under_a_temporary_name_then_renamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = CorpusFolder(tmp_path)
    renames = []

    def replace(source: str, destination: Path) -> None:
        # While the bytes are written, the real name does not exist: a reader never sees half.
        assert Path(source).name.startswith(TEMP_PREFIX) and Path(source).parent == tmp_path
        assert not Path(destination).exists() and Path(source).read_bytes() == b"whole"
        renames.append(Path(destination).name)
        real_replace(source, destination)

    real_replace = os.replace
    monkeypatch.setattr(os, "replace", replace)
    assert folder.save_bytes("a.safetensors", b"whole")
    assert renames == ["a.safetensors"] and folder.read_bytes("a.safetensors") == b"whole"


def test_a_failed_save_leaves_neither_the_file_nor_a_temporary_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(source: str, destination: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        CorpusFolder(tmp_path).save(an_input(), None, {})
    assert list(tmp_path.iterdir()) == []


def test_the_listing_passes_over_temporary_files_and_folders(tmp_path: Path) -> None:
    folder = CorpusFolder(tmp_path)
    folder.save(an_input(), None, {})
    (tmp_path / f"{TEMP_PREFIX}half-written").write_bytes(b"half")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("not an input")
    assert folder.names() == sorted([f"{content_hash(an_input())}.safetensors", "notes.txt"])
    assert [path.name for path, *_ in folder.scan(None)] == folder.names()
    assert [problem for *_, problem in folder.scan(None)] == [None, None]  # notes: no input


def test_a_deleted_file_is_gone_and_deleting_it_again_is_harmless(tmp_path: Path) -> None:
    folder = CorpusFolder(tmp_path)
    folder.save(an_input(0.25), None, {})
    folder.save(an_input(0.75), None, {})
    gone = folder.name_of(content_hash(an_input(0.25)))
    folder.delete(gone)
    folder.delete(gone)
    assert folder.names() == [folder.name_of(content_hash(an_input(0.75)))]


def test_raw_files_copied_into_another_folder_are_the_same_files(tmp_path: Path) -> None:
    source, copy = CorpusFolder(tmp_path / "a"), CorpusFolder(tmp_path / "b")
    source.create()
    copy.create()
    for value in (0.1, 0.2, 0.3):
        source.save(an_input(value), None, {"mutations": "1"})
    for name, data in source.files().items():
        assert copy.save_bytes(name, data)
    assert copy.files() == source.files()
    assert all(copy.read_bytes(name) == (source.path / name).read_bytes() for name in copy.names())


def test_only_a_content_hash_names_an_input(tmp_path: Path) -> None:
    assert CorpusFolder.digest_of(CorpusFolder.name_of("00ff")) == b"\x00\xff"
    assert CorpusFolder.digest_of("seed-000.npy") is None
