"""nnfuzz in a pytest suite: the ``nnfuzz_check`` fixture and ``--nnfuzz-budget``.

A test fuzzes a model the way ``nnfuzz run --stop-on-failure`` does, for a
budget the command line sets (small by default for everyday runs, larger in a
nightly job: ``pytest --nnfuzz-budget=600``), and fails at the first failure
with its description and the line that replays it. The fixture's output folder
is the test's ``tmp_path``, which pytest keeps after the run (its last three
runs), so the replay line works once the test has failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

#: Seconds each check fuzzes when neither --nnfuzz-budget nor the nnfuzz_budget ini option is set.
DEFAULT_BUDGET = 5.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnfuzz", "fuzzing models with nnfuzz")
    group.addoption("--nnfuzz-budget", type=float, default=None, metavar="SECONDS",
                    help=f"seconds each nnfuzz check fuzzes (default {DEFAULT_BUDGET:g}; a nightly "
                         "job: 600)")
    parser.addini("nnfuzz_budget", f"seconds each nnfuzz check fuzzes (default {DEFAULT_BUDGET:g})",
                  default=None)


def budget(config: pytest.Config) -> float:
    """The seconds a check fuzzes: the option, else the ini value, else DEFAULT_BUDGET."""
    chosen = config.getoption("nnfuzz_budget")
    if chosen is None:
        chosen = config.getini("nnfuzz_budget") or DEFAULT_BUDGET
    try:
        seconds = float(chosen)
    except ValueError:
        raise pytest.UsageError(f"nnfuzz_budget = {chosen!r}: give a number of seconds.") from None
    if seconds <= 0:
        raise pytest.UsageError(f"--nnfuzz-budget {seconds:g}: give a number of seconds above 0.")
    return seconds


def pytest_configure(config: pytest.Config) -> None:
    budget(config)  # a bad budget stops the session before any test runs


@pytest.fixture
def nnfuzz_check(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """``nnfuzz_check(target, seeds=None, **options)``: fuzz within the budget, fail the test
    at the first failure. ``target``: a target file's path (relative to the test file) or a
    model in memory (then ``seeds`` and the keywords of :func:`nnfuzz.fuzz`). Returns the
    :class:`nnfuzz.FuzzResult` of a clean run."""
    seconds = budget(request.config)
    here = Path(request.path).parent

    def check(target: Any, seeds: object = None, **options: Any) -> Any:
        reporter = _replays()
        out = tmp_path / "nnfuzz-out"
        settings = {"seed": 0, **options, "max_time": seconds, "stop_on_failure": True}
        result = _fuzz(target, seeds, here, out, reporter, settings)
        if result.failures:
            failure = result.failures[0]
            replay = reporter.commands.get(failure.signature) or (
                f"nnfuzz.load_failure({str(failure.path)!r}) (a model in memory has no target "
                "file to replay with: write one to use nnfuzz replay)")
            pytest.fail(f"nnfuzz found a failure: {failure.describe()}\n  replay: {replay}",
                        pytrace=False)
        return result

    return check


def _fuzz(target: Any, seeds: object, here: Path, out: Path, reporter: Any,
          settings: dict[str, Any]) -> Any:
    import nnfuzz
    from nnfuzz.config import FuzzConfig

    if isinstance(target, (str, Path)):
        path = Path(target) if Path(target).is_absolute() else here / target
        objectives = settings.pop("objectives", None)
        config = FuzzConfig(objectives=tuple(objectives) if objectives else None, **settings)
        return nnfuzz.fuzz_target(nnfuzz.load_target(path), config, out=out, reporter=reporter)
    return nnfuzz.fuzz(target, seeds, out=out, reporter=reporter, **settings)


def _replays() -> Any:
    """A reporter that keeps each failure's replay command by signature (nnfuzz, and torch
    with it, is imported only when a check runs, not whenever pytest starts)."""
    from nnfuzz.status import RecordingReporter

    class Replays(RecordingReporter):
        def __init__(self) -> None:
            super().__init__()
            self.commands: dict[str, str] = {}

        def failure(self, failure: Any, replay_command: str | None) -> None:
            super().failure(failure, replay_command)
            if replay_command:
                self.commands[failure.signature] = replay_command

    return Replays()
