"""The errors nnfuzz raises.

The library raises; only :mod:`nnfuzz.cli` prints and exits. Every error
carries the exit code the CLI uses for it and a message that names what is
wrong and says what to do next.
"""

from __future__ import annotations

import traceback
from pathlib import Path


class NnfuzzError(Exception):
    """Root of every error nnfuzz raises on purpose."""

    #: Usage errors, broken targets and unreadable inputs all exit 2 (the README's *Exit codes*).
    exit_code = 2

    def __init__(self, message: str, *, context: str | None = None) -> None:
        super().__init__(message)
        #: Extra text printed before the one-line message, e.g. the target's
        #: own traceback when importing it raised.
        self.context = context


class UsageError(NnfuzzError):
    """An option or argument has a value nnfuzz cannot use."""


class TargetError(NnfuzzError):
    """The target file, or what its functions return, breaks the contract."""


class CorpusError(NnfuzzError):
    """A corpus input does not fit the target's inputs."""


class ReproducerError(NnfuzzError):
    """A file is not a valid nnfuzz reproducer."""


class OutputError(NnfuzzError):
    """The output folder cannot be written (read-only, full, or not a folder)."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message: messages stay one line, and the rest
    is in the traceback shown above them."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def user_frame(frames: list[traceback.FrameSummary], source: Path | None,
               fallback: bool = True) -> traceback.FrameSummary | None:
    """The innermost frame in the target file ``source``, else in code outside torch and
    nnfuzz, else (with ``fallback``) the innermost of all: where to point the user."""
    import torch  # only here: the rest of this module needs no torch

    torch_dir = str(Path(torch.__file__).parent)
    nnfuzz_dir = str(Path(__file__).parent)
    preferred = [f for f in frames if source is not None and Path(f.filename).resolve() == source]
    user = [f for f in frames if not f.filename.startswith((torch_dir, nnfuzz_dir))
            and "<frozen" not in f.filename]
    chosen = preferred or user or (frames if fallback else [])
    return chosen[-1] if chosen else None


def user_traceback(error: BaseException) -> str:
    """The traceback of an error raised by the user's code, without nnfuzz's own frames."""
    package = str(Path(__file__).parent)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if package not in frame.filename and "<frozen importlib" not in frame.filename]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip("\n")
