"""How every ``nnfuzz`` command ends: one ``ERROR:`` line and the exit code of the README's
*Exit codes*, whatever went wrong (a library error, click's usage errors, Ctrl-C, a closed
pipe, a bug in nnfuzz); warnings as ``WARNING:`` lines. The target's own traceback is shown
above the line when the target itself raised.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from nnfuzz.errors import NnfuzzError
from nnfuzz.signals import EXIT_INTERRUPTED, handle_interrupts

if TYPE_CHECKING:
    from nnfuzz.config import FuzzResult

#: Exit code when stdout's reader went away (128 + SIGPIPE), as shells report it.
EXIT_BROKEN_PIPE = 141
#: Set this variable to see nnfuzz's own traceback on an internal error.
DEBUG_VARIABLE = "NNFUZZ_DEBUG"


def fail(message: str, code: int, context: str | None = None) -> None:
    if context:
        click.echo(context, err=True)
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(code)


def _show_warning(message: Any, category: Any, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    click.echo(f"WARNING: {message}", err=True)


def handles_errors(command: Callable[..., int]) -> Callable[..., None]:
    """Turn library errors and interrupts into one line and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # nnfuzz warns once per event (a skipped file, a changed target): say each one,
            # even when an earlier command in this process said the same.
            warnings.filterwarnings("always", module=r"nnfuzz(\.|$)")
            _run_command(command, *args, **kwargs)

    return wrapper


def _run_command(command: Callable[..., int], *args: Any, **kwargs: Any) -> None:
    # Installed again (the entry point did it first) for commands called in-process, from
    # tests and notebooks, and restored afterwards.
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    handle_interrupts()
    try:
        code = command(*args, **kwargs)
    except NnfuzzError as error:
        fail(str(error), error.exit_code, error.context)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (nnfuzz report OUT | head): stop quietly, as shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except Exception as error:  # noqa: BLE001 - a bug in nnfuzz: one line unless debugging
        if os.environ.get(DEBUG_VARIABLE):
            raise
        fail(f"internal error: {type(error).__name__}: {error} (set {DEBUG_VARIABLE}=1 "
              "for the traceback, and please report it)", 2)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    sys.exit(code)


class Commands(click.Group):
    """Click's usage errors as one ``ERROR:`` line too, like every other error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help() if error.ctx else str(error), err=True)
            sys.exit(2)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "nnfuzz"
            fail(f"{error.format_message()} (see '{command} --help')", error.exit_code)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except click.exceptions.Abort:
            fail("interrupted", EXIT_INTERRUPTED)


def run_exit_code(result: "FuzzResult", out: Path) -> int:
    """How ``run`` and ``train`` end: 130 after Ctrl-C, its state said saved in
    ``out``; 1 when the run found a new failure; else 0."""
    if result.interrupted:
        click.echo("INFO: interrupted; state saved in "
                   f"{out} (run the same command again to resume)", err=True)
        return EXIT_INTERRUPTED
    return 1 if result.failures else 0
