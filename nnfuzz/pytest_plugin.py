"""nnfuzz in a pytest suite: the ``nnfuzz_check`` fixture, and reproducers as test items.

A test fuzzes a model the way ``nnfuzz run --stop-on-failure`` does, for a
budget the command line sets (small by default for everyday runs, larger in a
nightly job: ``pytest --nnfuzz-budget=600``), and fails at the first failure
with its description and the line that replays it. The fixture's output folder
is the test's ``tmp_path``, which pytest keeps after the run (its last three
runs), so the replay line works once the test has failed.

``pytest --nnfuzz-replay DIR`` (or the ini option ``nnfuzz_replay``) makes each
saved reproducer a test item, Hypothesis's ``@example`` habit for fuzzing: it
fails while the failure still fails (or is flaky), passes once it is fixed, and
is an error when it cannot be replayed, as ``nnfuzz replay`` judges them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

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
    group.addoption("--nnfuzz-replay", action="append", default=[], metavar="DIR",
                    help="replay the reproducers of an nnfuzz output folder (or of a folder of "
                         "reproducers, or one file) as test items; repeatable")
    group.addoption("--nnfuzz-target", default=None, metavar="TARGET.py",
                    help="the target file to replay them against (default: the one the folder's "
                         "run.json names)")
    parser.addini("nnfuzz_replay", "reproducer folders replayed as test items with every run, "
                  "one per line: DIR, or DIR TARGET.py (paths relative to the ini file)",
                  type="linelist", default=[])


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
    config.stash[_SOURCES] = replay_sources(config)  # as does a replay folder it cannot use
    config.stash[_OUTCOMES] = []


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


# --- reproducers as test items --------------------------------------------------------------


@dataclass(frozen=True)
class ReplaySource:
    """Reproducers to replay and the target file to replay them against."""
    reproducers: Path
    target: Path


def replay_sources(config: pytest.Config) -> list[ReplaySource]:
    """What ``--nnfuzz-replay`` and the ini option ask for, each with its target; a
    pytest.UsageError (one line, before any test runs) for a folder that cannot be used."""
    given = config.getoption("nnfuzz_target")
    asked = [(Path(d), Path(given) if given else None) for d in config.getoption("nnfuzz_replay")]
    base = config.inipath.parent if config.inipath else config.rootpath
    for line in config.getini("nnfuzz_replay"):
        words = shlex.split(line)
        if len(words) not in (1, 2):
            raise pytest.UsageError(f"nnfuzz_replay = {line!r}: give DIR or DIR TARGET.py.")
        asked.append((base / words[0], base / words[1] if len(words) == 2 else None))
    return [_source(folder, target) for folder, target in asked]


def _source(folder: Path, target: Path | None) -> ReplaySource:
    if not folder.exists():
        raise pytest.UsageError(f"--nnfuzz-replay {folder}: no such folder: give an nnfuzz "
                                "output folder, its crashes/ or a reproducer file.")
    crashes = folder / "crashes" if (folder / "crashes").is_dir() else folder
    if target is None:
        target = _recorded_target(folder, crashes)
    if not target.is_file():
        raise pytest.UsageError(f"--nnfuzz-replay {folder}: the target {target} is not a file: "
                                "give --nnfuzz-target TARGET.py.")
    return ReplaySource(crashes, target)


def _recorded_target(folder: Path, crashes: Path) -> Path:
    """The target the run that wrote ``folder`` fuzzed, from its run.json: as recorded, else
    (a relative path from another working folder) beside the output folder."""
    from nnfuzz.run_record import read_run_json, recorded_target

    out = folder if (folder / "run.json").is_file() else crashes.parent
    try:
        recorded, _ = recorded_target(read_run_json(out / "run.json"))
    except (OSError, ValueError):
        recorded = None
    if not recorded:
        raise pytest.UsageError(f"--nnfuzz-replay {folder}: no run.json names its target: "
                                "give --nnfuzz-target TARGET.py.")
    path = Path(recorded)
    for candidate in (path, out.parent / path):
        if candidate.is_file():
            return candidate
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """The replay items join the collected tests (before -k and -m select among them)."""
    for source in config.stash.get(_SOURCES, []):
        folder = ReplayFolder.from_parent(session, path=source.reproducers, source=source,
                                          nodeid=_relative(source.reproducers, config.rootpath))
        items.extend(folder.collect())


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """Where the replay items come from ("collected N items" counts only the test files)."""
    replayed = [item for item in items if isinstance(item, ReproducerItem)]
    return [f"nnfuzz: {sum(i.parent is folder for i in replayed)} reproducer(s) in "
            f"{folder.source.reproducers} replayed against {folder.source.target}"
            for folder in dict.fromkeys(i.parent for i in replayed)]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


class ReplayFolder(pytest.Directory):
    """The reproducers of one folder. Its set-up loads the target once for all of them, so a
    target that fails to import is an error of each item, not of the session."""

    def __init__(self, *, source: ReplaySource, **kwargs: Any) -> None:
        from nnfuzz.reproducer import reproducer_paths

        super().__init__(**kwargs)
        self.source = source
        self.paths = reproducer_paths([source.reproducers])
        self.replayer: Any = None

    def collect(self) -> Iterator[pytest.Item]:
        for path in self.paths:
            yield ReproducerItem.from_parent(self, name=path.name, path=path)

    def setup(self) -> None:
        from nnfuzz.errors import NnfuzzError
        from nnfuzz.replay import Replayer
        from nnfuzz.target import load_target

        try:
            target = load_target(self.source.target, need_seeds=False)
            self.replayer = Replayer(target, self.paths)
            return
        except NnfuzzError as error:
            problem = str(error)
        pytest.fail(f"nnfuzz replay: cannot replay against {problem}", pytrace=False)

    def teardown(self) -> None:
        if self.replayer is not None:
            self.replayer.close()


class ReproducerItem(pytest.Item):
    """One saved failure. It is replayed in set-up, so one that cannot be replayed (a corrupt
    file, an input the model now raises on) is reported as an error, never as fixed; the test
    itself fails while the failure still fails or is flaky, and passes once it is fixed."""

    outcome: Any = None

    def setup(self) -> None:
        from nnfuzz.replay import Verdict

        parent = self.parent
        assert isinstance(parent, ReplayFolder)
        self.outcome = parent.replayer.replay(self.path)
        self.config.stash[_OUTCOMES].append(self.outcome)
        if self.outcome.verdict is Verdict.ERROR:
            pytest.fail(f"nnfuzz replay: {self.outcome.line()}", pytrace=False)

    def runtest(self) -> None:
        from nnfuzz.replay import Verdict

        if self.outcome.verdict in (Verdict.STILL_FAILS, Verdict.FLAKY):
            from nnfuzz.reproducer import replay_command

            parent = self.parent
            assert isinstance(parent, ReplayFolder)
            pytest.fail(f"nnfuzz replay: {self.outcome.verdict.value}: {self.outcome.detail}\n"
                        f"  replay: {replay_command(parent.source.target, self.path)}",
                        pytrace=False)

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"nnfuzz replay {self.name}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line of counts by verdict, and the fixed reproducers by name (they can go, or stay
    as regression tests)."""
    outcomes = config.stash.get(_OUTCOMES, [])
    if not outcomes:
        return
    from nnfuzz.ci import replay_summary
    from nnfuzz.replay import Verdict

    counts = replay_summary(outcomes)["counts"]
    terminalreporter.section("nnfuzz replay")
    terminalreporter.line(", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n))
    for outcome in outcomes:
        if outcome.verdict is Verdict.FIXED:
            terminalreporter.line(f"fixed: {outcome.path} (delete it, or keep it as a "
                                  "regression test)")


_SOURCES = pytest.StashKey[list[ReplaySource]]()
_OUTCOMES = pytest.StashKey[list[Any]]()
