"""One run per output folder: a second is refused, naming the first; a killed run's lock
never blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.target import load_target

from .support import assert_one_error_line, invoke


def test_a_second_run_on_a_folder_in_use_is_one_error_line_naming_the_first_runs_pid(
        tmp_path: Path, healthy_target: Path, in_process: Callable[..., InProcess]) -> None:
    out = tmp_path / "out"
    first = in_process(load_target(healthy_target), FuzzConfig(runs=100), out=out)
    try:
        second = invoke("run", healthy_target, "--out", out, "--runs", 100)
        assert_one_error_line(second, str(out), "in use by another nnfuzz run",
                              f"pid {os.getpid()}", "--out")
        assert first.run().execs == 100, "the first run is left alone"
    finally:
        first.close()
    again = invoke("run", healthy_target, "--out", out, "--runs", 100)
    assert again.exit_code == 0, again.output


#: A target whose model() leaves a mark: whether it was loaded at all.
MARKING = '''
from pathlib import Path
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    (Path(__file__).parent / "loaded").write_text("model() ran")
    return nn.Linear(4, 2)

def seeds():
    return torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
'''


def test_a_folder_in_use_or_of_another_target_is_refused_before_the_target_loads(
        tmp_path: Path, healthy_target: Path) -> None:
    from nnfuzz.output import OutputFolder
    from tests.targets import write_target

    (tmp_path / "marking").mkdir()
    marking = write_target(tmp_path / "marking", MARKING, name="marking.py")
    out = tmp_path / "out"
    held = OutputFolder(out)
    try:
        busy = invoke("run", marking, "--out", out, "--runs", 100)
    finally:
        held.close()
    assert_one_error_line(busy, "in use by another nnfuzz run")
    assert invoke("run", healthy_target, "--out", out, "--runs", 100).exit_code == 0
    other = invoke("run", marking, "--out", out, "--runs", 100)
    assert_one_error_line(other, "holds runs of")
    assert not (marking.parent / "loaded").exists(), "model() ran before the folder was checked"


HOLD = '''
import sys, time
from nnfuzz.output import OutputFolder
folder = OutputFolder(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
'''


def test_the_lock_of_a_killed_run_does_not_block_the_next(tmp_path: Path,
                                                           healthy_target: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        blocked = invoke("run", healthy_target, "--out", out, "--runs", 100)
        assert_one_error_line(blocked, f"pid {holder.pid}")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        holder.kill()
    result = invoke("run", healthy_target, "--out", out, "--runs", 100)
    assert result.exit_code == 0, result.output
