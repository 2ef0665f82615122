"""Tracking a command's run in an experiment tracker: MLflow (``--mlflow``) and TensorBoard
(``--tensorboard``).

One interface, :class:`Tracker`, receives what a run does: its start (the parameters), its
status snapshots (metrics, the step being this run's executions), its findings (new
reproducers, replay's verdicts, the doctor's checks) and its end (the stop reason, run.json
and the report's plot, the exit code). The Campaign feeds it for ``run`` and ``train``,
whatever the driver: workers and Ray actors report to the parent, so a run is logged once.
The tracker writes to sinks (nnfuzz.tracking.sinks: an MLflow run, a TensorBoard run
folder). Tracking never costs findings: a sink that raises is said once, as a warning, and
dropped; the run goes on as it would without it.

The base with no sinks does nothing, so the Campaign always has one.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from nnfuzz.errors import first_line

if TYPE_CHECKING:
    from nnfuzz.replay import ReplayOutcome
    from nnfuzz.reproducer import Failure
    from nnfuzz.status import Snapshot
    from nnfuzz.target import Target

#: The longest parameter value logged: MLflow servers before 1.28 refuse more than 500 chars.
MAX_PARAM_CHARS = 500
#: Exit codes and the MLflow run status each ends with (the README's *Exit codes*).
EXIT_STATUS = {0: "FINISHED", 1: "FINISHED", 130: "KILLED"}


class Sink:
    """Where a tracker writes: an MLflow run, a TensorBoard run folder. Each method may
    raise: the :class:`Tracker` says so once and stops writing to it."""

    #: How the user knows it, in warnings: "MLflow", "TensorBoard".
    name = "tracker"

    def params(self, values: Mapping[str, str]) -> None: ...

    def metrics(self, values: Mapping[str, float], step: int) -> None: ...

    def histogram(self, name: str, counts: Sequence[float], edges: Sequence[float]) -> None: ...

    def tags(self, values: Mapping[str, str]) -> None: ...

    def artifact(self, path: Path, folder: str | None = None) -> None: ...

    def close(self, exit_code: int) -> None: ...


class Tracker:
    """A command's run as its trackers see it; see the module's docstring."""

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks = list(sinks)
        #: Parameters already logged: a tracker keeps the first value of each.
        self.logged: set[str] = set()
        self.closed = False

    @property
    def active(self) -> bool:
        return bool(self.sinks)

    # --- the run's events ----------------------------------------------------------------

    def start(self, params: Mapping[str, object]) -> None:
        """The run's parameters; called again as more are known (the device, once the
        engine is set up). ``None`` values are left out."""
        new = {_key(key): _text(value) for key, value in params.items()
               if value is not None and _key(key) not in self.logged}
        self.logged |= set(new)
        if new:
            self._each("params", new)

    def status(self, snapshot: "Snapshot", failures: Sequence["Failure"]) -> None:
        """One status snapshot: the metrics at step = this run's executions."""
        if not self.sinks:
            return
        metrics: dict[str, float] = {
            "executions": snapshot.run_execs, "exec_per_s": snapshot.execs_per_s,
            "coverage": snapshot.coverage, "corpus": snapshot.corpus,
            "corpus_mb": snapshot.corpus_mb, "threshold": snapshot.threshold,
            "failures": snapshot.failures, "saved_failures": snapshot.saved_failures}
        for objective, count in Counter(failure.objective for failure in failures).items():
            metrics[_key(f"failures/{objective}")] = count
        self._each("metrics", metrics, snapshot.run_execs)

    def finding(self, failure: "Failure") -> None:
        """A new failure, its reproducer saved: logged as an artifact under crashes/."""
        if failure.path is not None and failure.path.is_file():
            self._each("artifact", failure.path, "crashes")

    def verdicts(self, target: "Target", outcomes: Sequence["ReplayOutcome"]) -> None:
        """replay's verdicts: one tag per reproducer, and how many of each verdict."""
        if not self.sinks:
            return
        from nnfuzz.execution import model_device
        from nnfuzz.replay import Verdict

        self.start({"device": str(model_device(target.model)), "reproducers": len(outcomes)})
        counts = Counter(outcome.verdict for outcome in outcomes)
        self._each("metrics", {_key(f"verdicts/{verdict.value.replace(' ', '_')}"): counts[verdict]
                               for verdict in Verdict}, 0)
        self._each("tags", {_key(f"verdict/{outcome.path.name}"): outcome.verdict.value
                            for outcome in outcomes})

    def results(self, metrics: Mapping[str, float], tags: Mapping[str, str],
                histograms: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> None:
        """A command's results at once (the doctor's checks): metrics at step 0, tags, and
        histograms as (counts, edges)."""
        if not self.sinks:
            return
        self._each("metrics", {_key(key): value for key, value in metrics.items()}, 0)
        self._each("tags", {_key(key): value for key, value in tags.items()})
        for name, (counts, edges) in histograms.items():
            if len(counts):
                self._each("histogram", _key(name), counts, edges)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        if path.is_file():
            self._each("artifact", path, folder)

    def end(self, reason: str, out: Path | None) -> None:
        """The run stopped: why, and the output folder's run.json and report plot."""
        if not self.sinks:
            return
        self._each("tags", {"stop_reason": reason})
        if out is not None:
            self.artifact(out / "run.json")
            with tempfile.TemporaryDirectory(prefix="nnfuzz-tracking-") as folder:
                png = _report_png(out, Path(folder) / "report.png")
                if png is not None:
                    self.artifact(png)

    def close(self, exit_code: int) -> None:
        """The command's exit code; the end of every sink's run (once)."""
        if self.closed:
            return
        self.closed = True
        self._each("tags", {"exit_code": str(exit_code)})
        self._each("close", exit_code)

    # --- every sink, each guarded --------------------------------------------------------

    def _each(self, method: str, *args: Any) -> None:
        for sink in list(self.sinks):
            try:
                with warnings.catch_warnings():
                    # the libraries' own deprecation chatter is not the user's business
                    warnings.simplefilter("ignore")
                    getattr(sink, method)(*args)
            except Exception as error:  # noqa: BLE001 - tracking never costs findings
                self.sinks.remove(sink)
                warnings.warn(f"{sink.name} tracking failed ({type(error).__name__}: "
                              f"{first_line(error)[:200]}); the rest of this run is not tracked "
                              f"there: check the tracking server or folder.", stacklevel=3)


def _report_png(out: Path, png: Path) -> Path | None:
    """``nnfuzz report``'s plot of the folder, when matplotlib is there to draw it."""
    try:
        from nnfuzz.report import plot, read_folder

        return plot(read_folder(out), png)
    except Exception:  # noqa: BLE001 - no matplotlib, or nothing to draw: no plot
        return None


def _key(name: str) -> str:
    """A metric, parameter or tag name both trackers take."""
    return re.sub(r"[^\w\-./: ]", "_", name)


def _text(value: object) -> str:
    if isinstance(value, (tuple, list)):
        value = ",".join(map(str, value))
    return str(value)[:MAX_PARAM_CHARS]
