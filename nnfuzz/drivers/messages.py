"""What a worker tells its parent, whether it is a process (through a queue) or a Ray
actor (as the result of each slice): frozen dataclasses, one per kind of news.

They cross a process boundary between nnfuzz's own processes, never into a file: a
failure travels as reproducer bytes (safetensors) and corpus inputs as their files'
bytes, so nothing a worker sends is a tensor tied to its memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nnfuzz.drivers.engine import Progress, StartUp


@dataclass(frozen=True)
class Ready:
    """The worker's engine is set up."""

    worker: int
    startup: StartUp


@dataclass(frozen=True)
class Status:
    """The worker's counters at the end of a slice."""

    worker: int
    progress: Progress


@dataclass(frozen=True)
class Found:
    """A new failure, minimized by the worker: its reproducer's bytes."""

    worker: int
    reproducer: bytes


@dataclass(frozen=True)
class Done:
    """The worker stopped by itself: its last counters and every failure it hit."""

    worker: int
    progress: Progress
    hits: dict[str, int]


@dataclass(frozen=True)
class Failed:
    """The worker could not go on (its target could not load, a seed fails, ...)."""

    worker: int
    message: str
    context: str | None = None


Message = Ready | Status | Found | Done | Failed


@dataclass(frozen=True)
class Slice:
    """A Ray actor's answer to one slice of work: its news (a Status or a Done last), the
    corpus files it saved, and every failure it has hit so far."""

    news: tuple[Message, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
