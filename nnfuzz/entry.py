"""The ``nnfuzz`` command's first lines: signals handled before anything heavy is imported.

Importing torch takes seconds (nine on a loaded 2-core machine). A Ctrl-C in that
window used to print a KeyboardInterrupt traceback, and a SIGINT sent to a run a
script had started (SIGINT ignored) was lost. So this module imports nothing but
the standard library and installs the handlers first.

During the imports a signal ends the process at once: nothing has been written
yet, and a KeyboardInterrupt raised inside an import is not safe to recover
from (a bare ``except:`` in a dependency swallows it and leaves a half-imported
module behind, measured with numpy). Once the CLI is imported, signals raise
KeyboardInterrupt, and each command stops cleanly and saves its state.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

from nnfuzz.signals import EXIT_INTERRUPTED, handle_interrupts

def _exit_now(signum: int, frame: Any) -> NoReturn:
    os.write(sys.stderr.fileno(), b"ERROR: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def main() -> None:
    """The console script: ``nnfuzz ARGS...``."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _exit_now)
    from nnfuzz.cli import main as cli_main

    handle_interrupts()
    try:
        cli_main(prog_name="nnfuzz")
    except KeyboardInterrupt:
        # Only an interrupt outside a command lands here (while click parses the
        # arguments): each command handles its own and saves its state.
        sys.stderr.write("ERROR: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
