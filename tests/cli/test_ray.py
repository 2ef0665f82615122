"""--ray ADDRESS --workers N: the workers as Ray actors on a local Ray cluster (issue #6).

The test starts a Ray head on loopback, as a user would start a cluster
('ray start --head'), runs nnfuzz against it, and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import nnfuzz

from tests.targets import HELD_EXECS_AT_MOST, held_pid, write_held_target

from .support import Process, assert_one_error_line, invoke

pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]' (CI installs it)")

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> str:
    """A one-node Ray cluster on this machine; nnfuzz finds it as a user would, with auto."""
    subprocess.run([RAY, "start", "--head", f"--port={free_port()}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield "auto"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def actor_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::RayWorker" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_two_ray_actors_find_the_planted_bug_into_the_same_output_folder_as_a_local_run(
        cluster: str, tmp_path: Path, dead_relu_target: Path) -> None:
    out = tmp_path / "out"
    run = Process("run", dead_relu_target, "--out", out, "--ray", cluster, "--workers", 2,
                  "--stop-on-failure", "--max-time", 120, cwd=tmp_path)
    code = run.wait(timeout=240)
    assert code == 1, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    (crash,) = (out / "crashes").glob("*.safetensors")
    assert nnfuzz.load_failure(crash).objective == "nonfinite"
    assert len(list((out / "corpus").iterdir())) > 0, "the actors' corpus reached OUT/corpus"
    record = json.loads((out / "run.json").read_text())
    assert record["runs"][0]["workers"] == 2 and record["totals"]["execs"] > 0
    replayed = invoke("replay", dead_relu_target, crash)
    assert replayed.exit_code == 1 and "still fails" in replayed.output


def test_a_killed_actor_is_replaced_and_the_run_goes_on(cluster: str, tmp_path: Path) -> None:
    """Actor 1 is killed while it fuzzes: its model holds it at a known call (so no wait on
    the clock decides whether the death is seen before the run stops: a death noticed while
    the run stops is an error, not a restart). Actor 0 is not held: the driver's start-up
    call waits for its first slice. The replacement does the rest of the share of --runs."""
    target = write_held_target(tmp_path, hold_here="ray_actor_index() == 1")
    out = tmp_path / "out"
    runs = 8000
    assert runs // 2 > HELD_EXECS_AT_MOST, "the held actor has not done its share yet"
    run = Process("run", target, "--out", out, "--ray", cluster, "--workers", 2,
                  "--runs", runs, "--batch-size", 100, cwd=tmp_path)
    try:
        victim = held_pid(tmp_path)
        assert victim in actor_pids(), "the held process is not a Ray actor"
        os.kill(victim, signal.SIGKILL)
        run.wait_for_line(lambda line: "died on Ray; restarting it" in line, timeout=120)
        (tmp_path / "go").touch()
        code = run.wait(timeout=120)
    finally:
        (tmp_path / "go").touch()
        run.kill()
    assert code == 0, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "reached --runs" and record["totals"]["execs"] == runs


def test_an_address_with_no_cluster_is_one_error(tmp_path: Path, healthy_target: Path) -> None:
    result = invoke("run", healthy_target, "--out", tmp_path / "out", "--ray",
                    f"127.0.0.1:{free_port()}", "--workers", 2, "--runs", 100)
    assert_one_error_line(result, "cannot reach a Ray cluster")


def test_nnfuzz_train_runs_on_ray_actors_into_one_folder(cluster: str, tmp_path: Path) -> None:
    example = Path(nnfuzz.__file__).resolve().parents[1] / "examples" / "train_bce.py"
    target = tmp_path / "train_bce.py"
    target.write_text(example.read_text())
    out = tmp_path / "out"
    run = Process("train", target, "--out", out, "--ray", cluster, "--workers", 2,
                  "--objective", "nonfinite", "--stop-on-failure", "--max-time", 120, cwd=tmp_path)
    code = run.wait(timeout=240)
    assert code == 1, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    (crash,) = (out / "crashes").glob("*.safetensors")
    assert nnfuzz.load_failure(crash).metadata["engine"] == "train"
    assert list((out / "corpus").glob("trajectory-*.safetensors")), "trajectories reached OUT"
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == "train" and record["runs"][0]["workers"] == 2
    replayed = invoke("replay", target, crash)
    assert replayed.exit_code == 1 and "still fails" in replayed.output
