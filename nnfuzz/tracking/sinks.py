"""The two sinks a :class:`nnfuzz.tracking.Tracker` writes to: an MLflow run (through
``MlflowClient``, no global active run) and a TensorBoard run folder (through
``torch.utils.tensorboard.SummaryWriter``). Both libraries are optional extras, imported
only here and only when asked for."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Mapping, Sequence

from nnfuzz.errors import UsageError
from nnfuzz.tracking import EXIT_STATUS, Sink

MLFLOW_EXTRA = "pip install 'nnfuzz[mlflow]'"
TENSORBOARD_EXTRA = "pip install 'nnfuzz[tensorboard]'"
#: Seconds to wait for an MLflow server to take a connection before the run goes on without
#: it: MLflow's own client retries for minutes, and a run must not wait for that.
CONNECT_TIMEOUT = 3.0
#: Seconds of status snapshots an MLflow run gets in one write (each snapshot keeps its own
#: step): one write per status line cost a sqlite store ~30 ms of CPU, 3% of a core.
FLUSH_SECONDS = 10.0
#: Asynchronous metric batches kept to wait on; the oldest is waited on past this (a minute
#: of status lines: by then it is long done, and a store that failed it is said).
PENDING = 64
#: MLflow's limit on metrics in one log_batch.
MAX_METRICS = 1000


class Unreachable(Exception):
    """The MLflow server did not take a connection: the run goes on untracked."""


def tracking_uri(given: str | None) -> str:
    """--mlflow's URI, else MLFLOW_TRACKING_URI, else MLflow's own default (a local store)."""
    if given:
        return given
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    import mlflow

    return mlflow.get_tracking_uri()


def check_reachable(uri: str) -> None:
    """One cheap connection to an http(s) server; a local store needs none."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise Unreachable(f"cannot reach the MLflow server at {uri} ({error})") from None


def require(module: str, option: str, extra: str) -> None:
    if find_spec(module) is None:
        raise UsageError(f"{option} needs {module}, which is not installed: {extra}")


class MlflowSink(Sink):
    """One MLflow run in ``experiment`` (made if missing). Metrics are gathered for
    FLUSH_SECONDS (the first at once) and logged asynchronously (MLflow's own queue, waited
    on at the end), so that a status line costs the loop no round trip to the store."""

    name = "MLflow"

    def __init__(self, uri: str, experiment: str, run_name: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(experiment))
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.pending: list[Any] = []
        self.gathered: list[Any] = []
        self.flushed = -FLUSH_SECONDS

    def params(self, values: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in values.items()])

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.gathered += [Metric(k, float(v), now, step) for k, v in values.items()]
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        self.flushed = time.monotonic()
        gathered, self.gathered = self.gathered, []
        for start in range(0, len(gathered), MAX_METRICS):
            self.pending.append(self.client.log_batch(
                self.run_id, metrics=gathered[start:start + MAX_METRICS], synchronous=False))
        while len(self.pending) > PENDING:
            self.pending.pop(0).wait()  # long done: says now if the store stopped taking them

    def tags(self, values: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in values.items()])

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def close(self, exit_code: int) -> None:
        self._flush()
        for operation in self.pending:
            operation.wait()
        self.client.set_terminated(self.run_id, EXIT_STATUS.get(exit_code, "FAILED"))


class TensorBoardSink(Sink):
    """One run folder under ``root``: scalars, histograms, and the parameters and tags as
    text (TensorBoard has no artifacts: their paths are listed as text)."""

    name = "TensorBoard"

    def __init__(self, root: Path, run_name: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = _fresh(root, run_name)
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.artifacts: list[str] = []

    def params(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self.writer.add_text(f"params/{key}", value)

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def histogram(self, name: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        middles = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
        self.writer.add_histogram_raw(
            name, min=edges[0], max=edges[-1], num=sum(counts),
            sum=sum(m * c for m, c in zip(middles, counts)),
            sum_squares=sum(m * m * c for m, c in zip(middles, counts)),
            bucket_limits=list(edges[1:]), bucket_counts=list(counts), global_step=0)

    def tags(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self.writer.add_text(f"tags/{key}", value)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.artifacts.append(f"{folder}/{path.name}" if folder else str(path))

    def close(self, exit_code: int) -> None:
        if self.artifacts:
            self.writer.add_text("artifacts", json.dumps(self.artifacts))
        self.writer.close()


def run_name(command: str, target: Path) -> str:
    """``run-model-20261206-162201``: the command, the target, when (UTC)."""
    return f"{command}-{target.stem}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def _fresh(root: Path, name: str) -> Path:
    """``root/name``, or ``name-2``, ... when two commands start in the same second."""
    folder, number = root / name, 1
    while folder.exists():
        number += 1
        folder = root / f"{name}-{number}"
    return folder
