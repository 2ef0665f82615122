"""``--mlflow [URI]``, ``--mlflow-experiment NAME`` and ``--tensorboard DIR`` on a command:
the options, and the one MLflow run and TensorBoard folder each command makes.

``@tracked("run")`` goes right below ``@handles_errors``: it adds the three options, opens
the tracker before the command runs (the command's options, the target's sha256 and the
versions as parameters), hands it to the command as ``tracker=``, and closes it with the
command's exit code, whatever the command returned or raised. Imports nothing heavy:
``nnfuzz --help`` answers before torch is loaded.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from nnfuzz.errors import NnfuzzError, UsageError
from nnfuzz.tracking import Tracker

#: The exit code of a command that raised: the README's *Exit codes*.
INTERRUPTED, BROKEN = 130, 2

OPTIONS = (
    click.option("--mlflow", "mlflow_uri", metavar="[URI]", is_flag=False, flag_value="",
                 default=None,
                 help="Log this run to MLflow: at URI, else MLFLOW_TRACKING_URI, else MLflow's "
                      "default local store (give it after TARGET, or as --mlflow=URI)."),
    click.option("--mlflow-experiment", metavar="NAME",
                 help="The MLflow experiment of --mlflow [default: the target file's name, "
                      "without .py]."),
    click.option("--tensorboard", "tensorboard_dir", metavar="DIR",
                 type=click.Path(file_okay=False, path_type=Path),
                 help="Log this run's metrics to a new TensorBoard run folder under DIR."),
)


def tracked(command: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """The tracking options on ``command``, and its tracker; see the module's docstring."""

    def decorate(function: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(function)
        def wrapper(*args: Any, mlflow_uri: str | None, mlflow_experiment: str | None,
                    tensorboard_dir: Path | None, **options: Any) -> int:
            tracker = open_tracker(command, options, mlflow_uri, mlflow_experiment,
                                   tensorboard_dir)
            try:
                code = function(*args, tracker=tracker, **options)
            except BaseException as error:
                tracker.close(_exit_code(error))
                raise
            tracker.close(code)
            return code

        for option in reversed(OPTIONS):
            option(wrapper)
        return wrapper

    return decorate


def open_tracker(command: str, options: dict[str, Any], mlflow_uri: str | None,
                 experiment: str | None, tensorboard_dir: Path | None) -> Tracker:
    """The command's tracker, its parameters logged; a tracker with no sinks when neither
    option is given. A missing extra is a usage error; an MLflow server that cannot be
    reached is one warning, and the command runs untracked there."""
    from nnfuzz.tracking import sinks

    if experiment is not None and mlflow_uri is None:
        raise UsageError(f"--mlflow-experiment {experiment!r} names the experiment of --mlflow: "
                         "add --mlflow.")
    if mlflow_uri is None and tensorboard_dir is None:
        return Tracker()
    target = Path(options["target"])
    name = sinks.run_name(command, target)
    opened: list[sinks.Sink] = []
    if mlflow_uri is not None:
        sinks.require("mlflow", "--mlflow", sinks.MLFLOW_EXTRA)
        try:
            uri = sinks.tracking_uri(mlflow_uri)
            sinks.check_reachable(uri)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MLflow's and SQLAlchemy's deprecations
                opened.append(sinks.MlflowSink(uri, experiment or target.stem, name))
        except Exception as error:  # noqa: BLE001 - tracking never costs findings
            warnings.warn(f"--mlflow: {_reason(error)}; this run is not logged to MLflow "
                          "(it goes on): start the server, or fix --mlflow or "
                          "MLFLOW_TRACKING_URI.", stacklevel=2)
    if tensorboard_dir is not None:
        sinks.require("tensorboard", "--tensorboard", sinks.TENSORBOARD_EXTRA)
        opened.append(sinks.TensorBoardSink(tensorboard_dir, name))
    tracker = Tracker(opened)
    if tracker.active:
        tracker.start({"command": command, **_params(options), **_identity(target)})
    return tracker


def _params(options: dict[str, Any]) -> dict[str, object]:
    """The options as given: unset ones (None, an empty repeatable option) left out."""
    return {key: str(value) if isinstance(value, Path) else value
            for key, value in options.items() if value is not None and value != ()}


def _identity(target: Path) -> dict[str, object]:
    from nnfuzz.target import file_sha256
    from nnfuzz.version import versions

    return {**versions(), "target_sha256": file_sha256(target) if target.is_file() else None}


def _reason(error: Exception) -> str:
    from nnfuzz.errors import first_line
    from nnfuzz.tracking.sinks import Unreachable

    if isinstance(error, Unreachable):
        return str(error)
    return f"MLflow failed ({type(error).__name__}: {first_line(error)[:200]})"


def _exit_code(error: BaseException) -> int:
    if isinstance(error, NnfuzzError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, SystemExit) and isinstance(error.code, int):
        return error.code
    return BROKEN
