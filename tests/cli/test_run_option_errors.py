"""``nnfuzz run`` with bad options, corpora and output folders: one ``ERROR:`` line, exit 2."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import nnfuzz.output
import nnfuzz.storage
from nnfuzz.storage import TEMP_PREFIX

from .support import assert_one_error_line, invoke


class _OsFailing:
    """The ``os`` module as one nnfuzz module sees it, with one function raising OSError."""

    def __init__(self, name: str, code: int, *, when=lambda *args: True) -> None:  # type: ignore[no-untyped-def]
        self._name, self._code, self._when = name, code, when

    def __getattr__(self, attribute: str):  # type: ignore[no-untyped-def]
        real = getattr(os, attribute)
        if attribute != self._name:
            return real

        def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
            if self._when(*args):
                raise OSError(self._code, os.strerror(self._code))
            return real(*args, **kwargs)
        return failing


def test_a_corpus_file_of_the_wrong_shape_is_one_line_naming_the_file(
        tmp_path: Path, healthy_target: Path) -> None:
    corpus = tmp_path / "corpus-in"
    corpus.mkdir()
    save_file({"input.0": torch.rand(4)}, str(corpus / "good.safetensors"))
    save_file({"input.0": torch.rand(7)}, str(corpus / "wide.safetensors"))  # the seeds are (4,)
    result = invoke("run", healthy_target, "--runs", 200, "--corpus", corpus, "--out", tmp_path / "out")
    assert_one_error_line(result, "wide.safetensors", "(7,)")


def test_a_corpus_npy_file_of_the_wrong_dtype_is_one_line_naming_the_file(
        tmp_path: Path, healthy_target: Path) -> None:
    corpus = tmp_path / "corpus-in"
    corpus.mkdir()
    np.save(corpus / "doubles.npy", np.full(4, 0.5, dtype=np.float64))  # the seeds are float32
    result = invoke("run", healthy_target, "--runs", 200, "--corpus", corpus, "--out", tmp_path / "out")
    assert_one_error_line(result, "doubles.npy", "float64")


def test_a_pickled_npy_in_the_corpus_is_refused_in_one_line_naming_the_file(
        tmp_path: Path, healthy_target: Path) -> None:
    # Corpora are data: loading one runs no code (README, *Output folder*), so object arrays are refused.
    corpus = tmp_path / "corpus-in"
    corpus.mkdir()
    np.save(corpus / "pickled.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    result = invoke("run", healthy_target, "--runs", 200, "--corpus", corpus, "--out", tmp_path / "out")
    assert_one_error_line(result, "pickled.npy")


def test_a_missing_corpus_folder_is_one_line_naming_it(tmp_path: Path, healthy_target: Path) -> None:
    result = invoke("run", healthy_target, "--runs", 200, "--corpus", tmp_path / "nowhere",
                    "--out", tmp_path / "out")
    assert_one_error_line(result, "nowhere", "--corpus")


def test_a_non_input_file_in_the_corpus_is_skipped_with_one_warning_and_the_run_works(
        tmp_path: Path, healthy_target: Path) -> None:
    corpus = tmp_path / "corpus-in"
    corpus.mkdir()
    np.save(corpus / "a.npy", np.full(4, 0.25, dtype=np.float32))
    save_file({"input.0": torch.full((4,), 0.75)}, str(corpus / "b.safetensors"))
    (corpus / "notes.txt").write_text("inputs collected by hand\n")
    out = tmp_path / "out"
    result = invoke("run", healthy_target, "--runs", 200, "--corpus", corpus, "--out", out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1, result.stderr
    assert "notes.txt" in warnings[0]
    assert "ERROR" not in result.output and "Traceback" not in result.output
    # The two real inputs joined the 16 seeds.
    assert "corpus 18," in result.stderr, result.stderr
    assert (out / "run.json").is_file()


def test_an_unknown_objective_is_one_line_naming_it_and_the_choices(
        tmp_path: Path, healthy_target: Path) -> None:
    result = invoke("run", healthy_target, "--runs", 200, "--objective", "nonfinit",
                    "--out", tmp_path / "out")
    assert_one_error_line(result, "nonfinit", "nonfinite", "exception")


def test_an_unknown_layer_is_one_line_naming_it_and_real_modules(
        tmp_path: Path, healthy_target: Path) -> None:
    result = invoke("run", healthy_target, "--runs", 200, "--layer", "encoder.relu",
                    "--out", tmp_path / "out")
    assert_one_error_line(result, "'encoder.relu'", "'1'")  # HEALTHY's modules are 0, 1, 2


def test_a_known_layer_is_accepted(tmp_path: Path, healthy_target: Path) -> None:
    result = invoke("run", healthy_target, "--runs", 200, "--layer", "1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output


def test_out_pointing_at_an_existing_file_is_one_line_naming_it(
        tmp_path: Path, healthy_target: Path) -> None:
    occupied = tmp_path / "results"
    occupied.write_text("not a folder\n")
    result = invoke("run", healthy_target, "--runs", 200, "--out", occupied)
    assert_one_error_line(result, str(occupied), "not a folder")
    assert occupied.read_text() == "not a folder\n"


@pytest.mark.parametrize(("code", "says"), [(errno.EROFS, "permission denied"),
                                            (errno.EACCES, "permission denied"),
                                            (errno.ENOSPC, "disk is full")],
                         ids=["read-only", "no-access", "disk-full"])
@pytest.mark.parametrize("call", ["replace", "mkstemp"])
def test_an_unwritable_output_folder_is_one_line_saying_why(
        tmp_path: Path, healthy_target: Path, monkeypatch: pytest.MonkeyPatch,
        code: int, says: str, call: str) -> None:
    if call == "replace":
        monkeypatch.setattr(nnfuzz.storage, "os", _OsFailing("replace", code))
    else:
        def mkstemp(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(nnfuzz.storage.tempfile, "mkstemp", mkstemp)
    out = tmp_path / "out"
    line = assert_one_error_line(invoke("run", healthy_target, "--runs", 200, "--out", out), str(out))
    assert says in line
    assert "--out" in line  # what to do about it


def test_a_disk_that_fills_during_the_run_is_one_line_naming_the_file_and_leaves_no_temp_file(
        tmp_path: Path, healthy_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The folder is writable at start; the first corpus file then fails to land.
    monkeypatch.setattr(nnfuzz.storage, "os", _OsFailing(
        "replace", errno.ENOSPC, when=lambda source, destination: "corpus" in str(destination)))
    out = tmp_path / "out"
    line = assert_one_error_line(invoke("run", healthy_target, "--runs", 2000, "--out", out),
                                 "disk is full", str(out / "corpus"))
    assert ".safetensors" in line
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))


def test_a_disk_that_fills_when_writing_stats_is_one_line_naming_stats_jsonl(
        tmp_path: Path, healthy_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nnfuzz.output, "os", _OsFailing("write", errno.ENOSPC))
    out = tmp_path / "out"
    assert_one_error_line(invoke("run", healthy_target, "--runs", 200, "--out", out),
                          "disk is full", "stats.jsonl")
