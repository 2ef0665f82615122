"""--mlflow and --tensorboard (issue 28): what a command logged, read back with MLflow's own
client (a sqlite store in a tmp folder) and TensorBoard's own EventAccumulator."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

from nnfuzz.config import FuzzConfig
from nnfuzz.target import file_sha256, load_target
from nnfuzz.tracking.command import open_tracker
from tests.targets import DEAD_RELU, HEALTHY, write_target

from .support import invoke

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Enough executions for a few status snapshots on a tiny model, few enough to stay quick.
RUNS = 300
NEEDS_MLFLOW = "needs MLflow: pip install 'nnfuzz[mlflow]'"
NEEDS_TENSORBOARD = "needs TensorBoard: pip install 'nnfuzz[tensorboard]'"
#: No retries: MLflow's own client would otherwise retry an unreachable server for minutes.
UNREACHABLE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sqlite store for the module (making its tables takes seconds); each test its own
    experiment, its artifacts in the tmp folder."""
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's deprecations, MLflow's business
        client(uri).search_experiments()
    yield uri


@pytest.fixture(autouse=True)
def no_tracking_uri_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns


def client(store: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


def experiment(store: str, name: str, tmp_path: Path) -> str:
    """A fresh experiment whose artifacts go to the test's tmp folder."""
    return client(store).create_experiment(
        name, artifact_location=(tmp_path / f"artifacts-{name}").as_uri())


def only_run(store: str, experiment_id: str) -> Any:
    runs = client(store).search_runs([experiment_id])
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]


def artifacts(store: str, run_id: str, folder: str | None = None) -> list[str]:
    return sorted(item.path for item in client(store).list_artifacts(run_id,
                                                                                          folder))


def test_run_logs_its_options_versions_metrics_reproducers_and_end_to_mlflow(
        tmp_path: Path, store: str) -> None:
    target = write_target(tmp_path, DEAD_RELU)
    experiment_id = experiment(store, "dead", tmp_path)
    result = invoke("run", target, "--out", tmp_path / "out", "--runs", RUNS,
                    "--mlflow", store, "--mlflow-experiment", "dead")
    assert result.exit_code == 1, result.output

    run = only_run(store, experiment_id)
    params, tags = run.data.params, run.data.tags
    assert params["command"] == "run" and params["runs"] == str(RUNS)
    assert params["target_sha256"] == file_sha256(target)
    assert params["torch"] and params["numpy"] and params["faiss"] and params["nnfuzz"]
    assert params["device"] == "cpu"
    assert tags["stop_reason"] == "reached --runs" and tags["exit_code"] == "1"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["executions"] == RUNS
    assert run.data.metrics["failures/nonfinite"] == 1
    assert {"run.json", "crashes", "report.png"} <= set(artifacts(store, run.info.run_id))
    saved = sorted(path.name for path in (tmp_path / "out" / "crashes").iterdir())
    assert [Path(p).name for p in artifacts(store, run.info.run_id, "crashes")] == saved

    # replay logs each verdict, so that a fix shows the night it lands
    replayed = experiment(store, "dead-replay", tmp_path)
    result = invoke("replay", target, tmp_path / "out" / "crashes", "--repeat", 1,
                    "--mlflow", store, "--mlflow-experiment", "dead-replay")
    assert result.exit_code == 1, result.output
    run = only_run(store, replayed)
    assert run.data.tags[f"verdict/{saved[0]}"] == "still fails"
    assert run.data.metrics["verdicts/still_fails"] == 1
    assert run.data.metrics["verdicts/fixed"] == 0
    assert run.data.tags["exit_code"] == "1" and run.data.params["command"] == "replay"


def one_step(engine: Any, seconds: float, stop: Any) -> Any:
    """run_slice with a status snapshot after every step, however fast the machine."""
    reason = stop(engine.execs)
    if reason is None:
        engine.step()
    return reason


def test_the_metric_history_has_a_point_per_status_snapshot_its_step_the_executions(
        tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfuzz.api import fuzz_target
    from nnfuzz.drivers import in_process

    monkeypatch.setattr(in_process, "run_slice", one_step)
    target = write_target(tmp_path, HEALTHY)
    experiment_id = experiment(store, "history", tmp_path)
    tracker = open_tracker("run", {"target": target}, store, "history", None)
    result = fuzz_target(load_target(target), FuzzConfig(runs=RUNS), out=tmp_path / "out",
                         tracker=tracker)
    tracker.close(0)
    assert result.execs == RUNS

    run = only_run(store, experiment_id)
    history = client(store).get_metric_history(run.info.run_id, "coverage")
    steps = sorted(metric.step for metric in history)
    assert len(steps) > 1 and steps[-1] == RUNS
    executions = client(store).get_metric_history(run.info.run_id,
                                                                     "executions")
    assert all(metric.value == metric.step for metric in executions)


@pytest.mark.parametrize("form", ["last", "before-an-option"])
def test_a_bare_mlflow_flag_logs_to_MLFLOW_TRACKING_URI_in_the_experiment_of_the_target(
        tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    target = write_target(tmp_path, HEALTHY, name=f"bare_{form.replace('-', '_')}.py")
    experiment_id = experiment(store, target.stem, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    args = (["--runs", RUNS, "--mlflow"] if form == "last" else ["--mlflow", "--runs", RUNS])
    result = invoke("run", target, "--out", tmp_path / "out", *args)
    assert result.exit_code == 0, result.output
    run = only_run(store, experiment_id)
    assert run.data.params["runs"] == str(RUNS) and run.data.tags["exit_code"] == "0"


def test_an_unreachable_server_is_one_warning_and_the_run_ends_as_without_tracking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    for key, value in UNREACHABLE.items():
        monkeypatch.setenv(key, value)
    target = write_target(tmp_path, DEAD_RELU)
    plain = invoke("run", target, "--out", tmp_path / "plain", "--runs", RUNS)
    tracked = invoke("run", target, "--out", tmp_path / "tracked", "--runs", RUNS,
                     "--mlflow", "http://127.0.0.1:9")
    assert tracked.exit_code == plain.exit_code == 1, tracked.output
    warnings = [line for line in tracked.stderr.splitlines() if line.startswith("WARNING:")]
    before = [line for line in plain.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == len(before) + 1, tracked.stderr
    assert "127.0.0.1:9" in warnings[0] and "not logged to MLflow" in warnings[0]
    assert len(list((tmp_path / "tracked" / "crashes").iterdir())) == 1


def test_a_missing_extra_is_one_error_line(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfuzz.tracking import sinks
    from .support import assert_one_error_line

    monkeypatch.setattr(sinks, "find_spec", lambda name: None)
    target = write_target(tmp_path, HEALTHY)
    assert_one_error_line(invoke("run", target, "--runs", 10, "--mlflow"),
                          "--mlflow needs mlflow", "pip install 'nnfuzz[mlflow]'")
    assert_one_error_line(invoke("doctor", target, "--tensorboard", tmp_path / "tb"),
                          "--tensorboard needs tensorboard", "nnfuzz[tensorboard]")
    assert_one_error_line(invoke("run", target, "--mlflow-experiment", "x"),
                          "--mlflow-experiment 'x'", "add --mlflow")


def scalars(folder: Path) -> Any:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason=NEEDS_TENSORBOARD).EventAccumulator
    (run,) = folder.iterdir()  # one run folder per command
    events = accumulator(str(run))
    events.Reload()
    return events


def test_tensorboard_gets_the_same_scalars_in_a_run_folder_of_its_own(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason=NEEDS_TENSORBOARD)
    target = write_target(tmp_path, HEALTHY)
    result = invoke("run", target, "--out", tmp_path / "out",
                    "--runs", RUNS, "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    events = scalars(tmp_path / "tb")
    assert {"executions", "exec_per_s", "coverage", "corpus", "failures",
            "threshold"} <= set(events.Tags()["scalars"])
    assert events.Scalars("executions")[-1].value == RUNS
    assert "tags/stop_reason/text_summary" in events.Tags()["tensors"]


def test_doctor_logs_its_checks_histograms_record_and_page(tmp_path: Path, store: str) -> None:
    pytest.importorskip("tensorboard", reason=NEEDS_TENSORBOARD)
    target = EXAMPLES / "doctor_digits.py"
    experiment_id = experiment(store, "doctor", tmp_path)
    result = invoke("doctor", target, "--out", tmp_path / "doctor", "--check", "activations",
                    "--check", "gradient-flow", "--mlflow", store, "--mlflow-experiment",
                    "doctor", "--tensorboard", tmp_path / "tb")
    assert result.exit_code in (0, 1), result.output

    run = only_run(store, experiment_id)
    assert run.data.tags["check/activations"] in {"pass", "warn", "fail"}
    assert "check/gradient-flow" in run.data.metrics
    assert run.data.tags["exit_code"] == str(result.exit_code)
    assert {"doctor.json", "doctor.html"} <= set(artifacts(store, run.info.run_id))
    histograms = scalars(tmp_path / "tb").Tags()["histograms"]
    assert "gradient_norms" in histograms
    assert any(name.startswith("activations/") for name in histograms)


def test_train_is_tracked_too(tmp_path: Path, store: str) -> None:
    target = EXAMPLES / "train_bce.py"
    experiment_id = experiment(store, "train", tmp_path)
    result = invoke("train", target, "--out", tmp_path / "out", "--runs", 20,
                    "--mlflow", store, "--mlflow-experiment", "train")
    assert result.exit_code in (0, 1), result.output
    run = only_run(store, experiment_id)
    assert run.data.params["command"] == "train" and run.data.params["max_steps"]
    assert run.data.tags["stop_reason"] == "reached --runs"
    assert "executions" in run.data.metrics


@pytest.mark.slow
def test_two_workers_log_one_mlflow_run_from_the_parent(tmp_path: Path, store: str) -> None:
    target = write_target(tmp_path, HEALTHY)
    experiment_id = experiment(store, "workers", tmp_path)
    # The command in this process (the workers are processes all the same): only the parent
    # may log, and what the workers would log would reach the same store.
    run = invoke("run", target, "--out", tmp_path / "out", "--workers", 2, "--runs", 400,
                 "--mlflow", store, "--mlflow-experiment", "workers")
    assert run.exit_code == 0, run.output
    logged = only_run(store, experiment_id)
    assert logged.data.params["workers"] == "2" and logged.data.tags["exit_code"] == "0"
    assert logged.data.metrics["executions"] == 400


def test_a_command_that_fails_ends_its_mlflow_run_failed_with_its_exit_code(
        tmp_path: Path, store: str) -> None:
    target = write_target(tmp_path, "raise RuntimeError('broken on import')\n", name="broken.py")
    experiment_id = experiment(store, "broken", tmp_path)
    result = invoke("run", target, "--out", tmp_path / "out", "--mlflow", store)
    assert result.exit_code == 2, result.output
    run = only_run(store, experiment_id)
    assert run.info.status == "FAILED" and run.data.tags["exit_code"] == "2"
    assert run.data.params["target_sha256"] == file_sha256(target)
