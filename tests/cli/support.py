"""Helpers shared by the CLI tests: invoking ``nnfuzz`` and reading what it said."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from click.testing import CliRunner, Result

import nnfuzz
from nnfuzz.cli import main

#: nnfuzz's own source folder: no frame of it may show in a message.
NNFUZZ_DIR = str(Path(nnfuzz.__file__).resolve().parent)


def invoke(*args: object) -> Result:
    """``nnfuzz ARGS...`` in this process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, [str(arg) for arg in args], prog_name="nnfuzz")


def assert_one_error_line(result: Result, *fragments: str, traceback_expected: bool = False) -> str:
    """Exit 2 and exactly one ``ERROR:`` line on stderr, said last, holding ``fragments``.

    Returns that line. Without ``traceback_expected`` no traceback may appear
    anywhere; with it, one may (the target's own), but never a frame of nnfuzz.
    """
    said = f"exit code {result.exit_code}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.exit_code == 2, said
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{said}"
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("ERROR:")]
    assert len(errors) == 1, f"expected exactly one line starting with ERROR: on stderr\n{said}"
    assert lines[-1] == errors[0], f"the ERROR line is not one whole line said last\n{said}"
    line = errors[0]
    assert "internal error" not in line, said
    if traceback_expected:
        assert NNFUZZ_DIR not in result.output, said
    else:
        assert "Traceback" not in result.output, said
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in the ERROR line\n{said}"
    return line


#: ``python -c`` this, then ARGS: execs ``python ARGS`` with SIGINT ignored.
IGNORING_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


class Process:
    """``python -m nnfuzz ARGS...`` in a subprocess, its stderr read line by line as it comes."""

    def __init__(self, *args: object, cwd: Path, sigint_ignored: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NNFUZZ_DEBUG", None)
        command = [sys.executable, "-m", "nnfuzz", *map(str, args)]
        if sigint_ignored:
            # A script's background job starts with SIGINT ignored (what `cmd &` does); an
            # ignored signal stays ignored across exec. (Not preexec_fn: it makes Popen fork
            # this large process, which fails with ENOMEM on a loaded machine.)
            command[1:1] = ["-c", IGNORING_SIGINT]
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stderr, self.stderr_lines),
                                              (self.proc.stdout, self.stdout_lines))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._changed:
                into.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.stderr_lines)

    def wait_for_line(self, wanted: Callable[[str], bool], timeout: float = 90.0) -> str:
        """The first stderr line ``wanted`` accepts; fails if the process ends or time runs out first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.stderr_lines:
                    if wanted(line):
                        return line
                if self.proc.poll() is not None and not self._readers[0].is_alive():
                    raise AssertionError(f"nnfuzz exited {self.proc.returncode} before the line "
                                         f"awaited:\n{''.join(self.stderr_lines)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such line after {timeout}s:\n{''.join(self.stderr_lines)}")
                self._changed.wait(min(left, 0.05))

    def wait(self, timeout: float = 90.0) -> int:
        """The exit code, once the process ended and its output was read."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"nnfuzz did not exit within {timeout}s:\n{self.stderr}") from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def wait_for_handler(self, number: signal.Signals, timeout: float = 90.0) -> None:
        """Until the process catches signal ``number`` (its bit in /proc's SigCgt mask)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
            except OSError:
                break
            [caught] = [line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")]
            if int(caught, 16) >> (number - 1) & 1:
                return
            time.sleep(0.001)
        raise AssertionError(f"the process never caught {number.name}:\n{self.stderr}")

    def kill(self) -> None:
        """SIGKILL this process (and only it), then reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
