"""The Tracker (nnfuzz.tracking) without MLflow or TensorBoard: what it hands its sinks, and
that a sink that fails is said once and dropped, the run going on (tracking never costs
findings)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import click
import pytest
from click.testing import CliRunner

from nnfuzz.status import Snapshot
from nnfuzz.tracking import Sink, Tracker
from nnfuzz.tracking.command import tracked


class Recording(Sink):
    name = "Recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def params(self, values: Mapping[str, str]) -> None:
        self.calls.append(("params", dict(values)))

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        self.calls.append(("metrics", (dict(values), step)))

    def histogram(self, name: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        self.calls.append(("histogram", name))

    def tags(self, values: Mapping[str, str]) -> None:
        self.calls.append(("tags", dict(values)))

    def close(self, exit_code: int) -> None:
        self.calls.append(("close", exit_code))


class Broken(Recording):
    name = "Broken"

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        raise ConnectionError("the server went away\nand said more")


def snapshot(execs: int) -> Snapshot:
    return Snapshot(elapsed_s=1.0, execs=execs + 1000, execs_per_s=50.0, corpus=3, coverage=4,
                    failures=0, run_execs=execs, threshold=0.5)


def test_status_snapshots_are_metrics_at_this_runs_executions_and_params_keep_their_first_value(
) -> None:
    sink = Recording()
    tracker = Tracker([sink])
    tracker.start({"device": "cpu", "unset": None, "layers": ("a", "b")})
    tracker.start({"device": "cuda:0", "seed": 3})
    tracker.status(snapshot(200), [])
    tracker.close(1)
    tracker.close(1)
    assert sink.calls[0] == ("params", {"device": "cpu", "layers": "a,b"})
    assert sink.calls[1] == ("params", {"seed": "3"})
    metrics, step = sink.calls[2][1]
    assert step == 200 and metrics["executions"] == 200 and metrics["coverage"] == 4
    assert sink.calls[3:] == [("tags", {"exit_code": "1"}), ("close", 1)]


def test_a_sink_that_fails_is_one_warning_and_is_dropped_the_others_go_on() -> None:
    good, bad = Recording(), Broken()
    tracker = Tracker([bad, good])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        for execs in (100, 200, 300):
            tracker.status(snapshot(execs), [])
        tracker.close(0)
    assert [str(w.message) for w in said] == [
        "Broken tracking failed (ConnectionError: the server went away); the rest of this run "
        "is not tracked there: check the tracking server or folder."]
    assert tracker.sinks == [good]
    assert [call for call in good.calls if call[0] == "metrics"][-1][1][1] == 300
    assert good.calls[-1] == ("close", 0)


def test_without_sinks_nothing_is_asked_of_anything() -> None:
    tracker = Tracker()
    tracker.start({"device": "cpu"})
    tracker.status(snapshot(100), [])
    tracker.end("reached --runs", Path("/nonexistent"))
    tracker.close(0)
    assert not tracker.active


@pytest.mark.parametrize("arguments, given", [
    ([], None), (["--mlflow"], ""), (["--mlflow", "--other"], ""),
    (["--mlflow", "sqlite:///x.db"], "sqlite:///x.db"), (["--mlflow=http://h:5000"], "http://h:5000"),
])
def test_mlflow_takes_an_optional_value(arguments: list[str], given: str | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """click's optional value (is_flag=False, flag_value=""): alone, before another option,
    with a value, with =."""
    from nnfuzz.tracking import command

    seen: dict[str, Any] = {}
    monkeypatch.setattr(command, "open_tracker",
                        lambda name, options, uri, experiment, folder: seen.update(uri=uri)
                        or Tracker())

    @click.command()
    @click.option("--other", is_flag=True)
    @tracked("test")
    def test(other: bool, tracker: Tracker) -> int:
        return 0

    result = CliRunner().invoke(test, arguments, standalone_mode=False)
    assert result.exception is None, result.output
    assert seen["uri"] == given
