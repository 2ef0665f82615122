"""How the ``nnfuzz`` command treats Ctrl-C and SIGTERM once it is running: both raise
KeyboardInterrupt, and each command stops cleanly, saves its state and exits with
:data:`EXIT_INTERRUPTED`. Standard library only: the entry point imports it before torch."""

from __future__ import annotations

import signal
from typing import Any, NoReturn

#: Exit code for a run stopped by Ctrl-C or SIGTERM (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def handle_interrupts() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, even where the parent left SIGINT ignored.

    Python keeps SIGINT ignored when it started ignored (a job a shell put in the
    background, a CI runner's child): the run must still stop and save its state.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
