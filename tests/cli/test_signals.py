"""Ctrl-C and SIGKILL on a real ``python -m nnfuzz run`` process (README: *Output folder*, *Exit codes*)."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

import nnfuzz
from nnfuzz.storage import TEMP_PREFIX, read_input_file

from .support import Process

pytestmark = pytest.mark.slow

#: How many times the run is killed, each kill followed by a resume. Eight kills, each in
#: its own eighth of KILL_WINDOW (kill_moments), reach every part of the window (the first
#: writes, the first failure's minimization, the loop after) as the twenty uniform draws this
#: test made before did: twenty left a largest gap of about 0.26 s on average, eight slices
#: leave none wider than 0.375 s, and where in the loop's millisecond batches and writes a kill
#: lands is as random as before. Every kill is followed by the same checks, the final resume
#: is the same.
KILLS = 8
#: Each kill comes at a moment drawn from this many seconds after the run's first line
#: (set-up done, loop starting): mid-batch, mid-write, mid-minimization.
KILL_WINDOW = 1.5


def kill_moments(seed: int = 0) -> list[float]:
    """KILLS moments in KILL_WINDOW, one drawn uniformly in each of KILLS equal slices
    (shuffled: early and late kills come in any order, as before)."""
    draw = random.Random(seed)
    width = KILL_WINDOW / KILLS
    moments = [(slot + draw.random()) * width for slot in range(KILLS)]
    draw.shuffle(moments)
    return moments


def test_ctrl_c_after_the_first_status_line_saves_state_and_exits_130(
        tmp_path: Path, healthy_target: Path) -> None:
    out = tmp_path / "out"
    process = Process("run", healthy_target, "--out", out, "--batch-size", 10, cwd=tmp_path)
    try:
        process.wait_for_line(lambda line: line.startswith("#"))
        process.proc.send_signal(signal.SIGINT)
        code = process.wait()
    finally:
        process.kill()
    stderr = process.stderr
    assert code == 130, stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert "interrupted" in stderr.splitlines()[-1], stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "interrupted"
    assert record["end_time"] is not None
    assert record["totals"]["execs"] > 0
    for path in (out / "corpus").iterdir():
        read_input_file(path)
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_imports_is_one_error_line_and_exit_130_even_with_sigint_ignored(
        tmp_path: Path, healthy_target: Path, number: signal.Signals) -> None:
    """A script's job starts with SIGINT ignored; the signal comes while torch is still being
    imported (the handler is the entry point's first line; the imports take seconds)."""
    out = tmp_path / "out"
    process = Process("run", healthy_target, "--out", out, cwd=tmp_path, sigint_ignored=True)
    try:
        process.wait_for_handler(signal.SIGTERM)  # installed by the entry point, before torch
        process.proc.send_signal(number)
        code = process.wait()
    finally:
        process.kill()
    assert (code, process.stderr) == (130, "ERROR: interrupted\n")
    assert not out.exists(), "interrupted before the run began"


def _saved(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()
            if not path.name.startswith(TEMP_PREFIX)}


def _check_folder_is_whole(out: Path) -> None:
    """Every real file of the folder is complete: what a kill may leave is only temp files."""
    if (out / "run.json").exists():  # a kill before the run's first write leaves none yet
        json.loads((out / "run.json").read_text())
    for path in (out / "corpus").iterdir():
        if not path.name.startswith(TEMP_PREFIX):
            inputs, _ = read_input_file(path)
            assert inputs[0].shape == (16,), path
    for path in (out / "crashes").iterdir():
        if not path.name.startswith(TEMP_PREFIX):
            assert nnfuzz.load_failure(path).objective == "nonfinite", path


def test_sigkill_at_any_moment_leaves_a_folder_that_resumes_without_losing_a_file(
        tmp_path: Path, dead_relu_target: Path) -> None:
    out = tmp_path / "out"
    command = ("run", dead_relu_target, "--out", out, "--batch-size", 10)
    corpus: dict[str, bytes] = {}
    crashes: dict[str, bytes] = {}
    files_at_kill, written_by_killed_runs = [], 0
    for attempt, delay in enumerate(kill_moments()):
        process = Process(*command, cwd=tmp_path)
        try:
            # Each run after a kill starts without error: set-up completes and the loop runs.
            process.wait_for_line(lambda line: line.startswith("INFO:"))
            time.sleep(delay)
            # What is on disk just before the kill; every one of these must survive it.
            before = _saved(out / "corpus")
        finally:
            process.kill()
        said = f"kill {attempt + 1} ({delay:.2f}s into the loop):\n{process.stderr}"
        assert "Traceback" not in process.stderr and "ERROR" not in process.stderr, said
        _check_folder_is_whole(out)
        corpus_now, crashes_now = _saved(out / "corpus"), _saved(out / "crashes")
        assert corpus_now.items() >= before.items(), said
        assert corpus_now.items() >= corpus.items(), said
        assert crashes_now.items() >= crashes.items(), said
        files_at_kill.append(len(before))
        written_by_killed_runs += len(before.keys() - corpus.keys())
        corpus, crashes = corpus_now, crashes_now

    # The kills hit a folder with files in it, and runs that had been writing: a test whose
    # kills all came before the first write would prove nothing.
    assert sum(count > 0 for count in files_at_kill) >= KILLS - 1, files_at_kill
    assert written_by_killed_runs > 0, files_at_kill

    finish = Process(*command, "--runs", 500, cwd=tmp_path)
    code = finish.wait()
    assert code == (0 if crashes else 1), finish.stderr
    assert "Traceback" not in finish.stderr and "ERROR" not in finish.stderr, finish.stderr
    _check_folder_is_whole(out)
    assert _saved(out / "corpus").items() >= corpus.items()
    assert _saved(out / "crashes").items() >= crashes.items()
    assert _saved(out / "crashes"), "DEAD_RELU's failure was never saved"
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    for line in (out / "stats.jsonl").read_text().splitlines():
        json.loads(line)
    assert json.loads((out / "run.json").read_text())["stop_reason"] == "reached --runs"
