"""--workers N: worker processes sharing OUT/corpus, one parent writing the rest (issue #6)."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
import torch

import nnfuzz
from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.engine import Progress
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.drivers.processes import WorkerPool
from nnfuzz.status import Reporter
from nnfuzz.target import load_target

from tests.targets import (DEAD_RELU, HEALTHY, HELD_EXECS_AT_MOST, ZERO_HEAD, held_pid,
                           write_held_target, write_target)

from .support import Process


def worker_pids(parent: int) -> list[int]:
    """The parent's worker processes (spawned children; not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                found.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def assert_gone(pids: list[int], message: str) -> None:
    """Every process of ``pids`` ends (a liveness bound for a hang, not a speed assertion)."""
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), message


@pytest.mark.slow
def test_two_workers_find_the_planted_bug_save_it_once_and_add_up_their_executions(
        tmp_path: Path, dead_relu_target: Path) -> None:
    out = tmp_path / "out"
    run = Process("run", dead_relu_target, "--out", out, "--workers", 2, "--runs", 20000,
                  cwd=tmp_path)
    code = run.wait(timeout=180)
    assert code == 1, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    (crash,) = (out / "crashes").glob("*.safetensors")
    assert nnfuzz.load_failure(crash).objective == "nonfinite"
    assert run.stderr.count("==FAILURE==") == 1
    record = json.loads((out / "run.json").read_text())
    assert record["runs"][0]["workers"] == 2
    assert record["totals"]["execs"] == 20000, "the workers' shares of --runs add up"
    assert record["stop_reason"] == "reached --runs"
    assert len(list((out / "corpus").iterdir())) > 0, "the workers wrote the shared corpus"


def test_a_failure_two_workers_find_is_saved_once(tmp_path: Path, dead_relu_target: Path) -> None:
    pool = WorkerPool(load_target(dead_relu_target), FuzzConfig(runs=0), tmp_path / "out", None,
                      2, None, Reporter())
    for value in (0.1, 0.2):  # two different inputs, one bug
        pool._found(nnfuzz.Failure(inputs=(torch.full((16,), value),), seed=(torch.ones(16),),
                                     objective="nonfinite", detail="NaN", signature="nonfinite:head"))
    assert len(list((tmp_path / "out" / "crashes").iterdir())) == 1
    assert len(pool.campaign.failures) == 1
    pool.campaign.close()


def test_a_restarted_worker_gets_the_runs_deadline_and_what_is_left_of_its_share_of_runs(
        tmp_path: Path, healthy_target: Path) -> None:
    pool = WorkerPool(load_target(healthy_target), FuzzConfig(max_time=15, runs=1000),
                      tmp_path / "out", None, 2, None, Reporter())
    try:
        # --max-time counts from the parent's start, the workers' start-up included: every
        # worker, restarted or not, stops at the same moment, not 15 s after its own start.
        assert {worker.spec.start.deadline for worker in pool.workers} == {pool.campaign.deadline}
        assert pool.campaign.deadline.at == pool.campaign.started + 15
        pool.latest[0] = Progress(execs=300)
        config = pool.restarted_config(pool.worker_configs()[0], 0, restart=1)
        assert config.runs == 500 - 300 and pool._execs() == 300
        assert config.seed != pool.worker_configs()[0].seed
    finally:
        pool.campaign.close()


def test_a_worker_past_the_runs_deadline_stops_before_its_first_batch(
        healthy_target: Path, tmp_path: Path) -> None:
    from nnfuzz.campaign import Campaign
    from nnfuzz.config import StopReason
    from nnfuzz.config import Deadline
    from nnfuzz.drivers.engine import EngineStart, run_slice
    from nnfuzz.drivers.processes import WorkerSpec, worker_stop
    from nnfuzz.loop import Fuzzer

    target, config = load_target(healthy_target), FuzzConfig(runs=10_000)
    spec = WorkerSpec(0, healthy_target, config, tmp_path,
                      EngineStart(deadline=Deadline.after(-1.0)), None, 1, os.getpid())
    stop = worker_stop(spec, parent_says_stop=lambda: False, found=lambda: False)
    with Fuzzer(target, config, Campaign(target, config, None)) as fuzzer:
        assert (run_slice(fuzzer, 5.0, stop), fuzzer.execs) == (StopReason.MAX_TIME, 0)
    running = worker_stop(replace(spec, start=EngineStart()), lambda: False, lambda: False)
    assert running(0) is None and running(10_000) is StopReason.RUNS
    assert worker_stop(spec, lambda: True, lambda: False)(0) is StopReason.STOPPED


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_saves_the_run(tmp_path: Path, healthy_target: Path) -> None:
    out = tmp_path / "out"
    run = Process("run", healthy_target, "--out", out, "--workers", 2, cwd=tmp_path)
    try:
        run.wait_for_line(lambda line: line.startswith("#") and not line.startswith("#0 "))
        workers = worker_pids(run.proc.pid)
        assert len(workers) == 2
        run.proc.send_signal(signal.SIGINT)
        code = run.wait(timeout=60)
    finally:
        run.kill()
    assert code == 130, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert_gone(workers, "a worker outlived the run")
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "interrupted" and record["totals"]["execs"] > 0


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_restarted_and_the_run_goes_on(tmp_path: Path) -> None:
    """The worker is killed while it fuzzes (held by its model at a known call, so no wait
    on the clock decides when); its replacement does the rest of its share of --runs, and the
    run ends as it would have without the kill."""
    target = write_held_target(tmp_path)
    out = tmp_path / "out"
    runs = 8000
    assert runs // 2 > HELD_EXECS_AT_MOST, "a held worker has not done its share yet"
    run = Process("run", target, "--out", out, "--workers", 2, "--runs", runs,
                  "--batch-size", 100, cwd=tmp_path)
    try:
        victim = held_pid(tmp_path)
        assert victim in worker_pids(run.proc.pid)
        os.kill(victim, signal.SIGKILL)
        run.wait_for_line(lambda line: "died" in line and "restarting it" in line)
        (tmp_path / "go").touch()
        code = run.wait(timeout=90)
    finally:
        (tmp_path / "go").touch()
        run.kill()
    assert code == 0, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "reached --runs", record
    assert record["totals"]["execs"] == runs, "the replacement did the rest of the share"


@pytest.mark.slow
def test_a_target_the_workers_refuse_is_one_error_line(tmp_path: Path) -> None:
    failing_seeds = DEAD_RELU.replace("return 0.8 + 0.2 * torch.rand(8, 16, generator=g)",
                                      "return 0.2 * torch.rand(8, 16, generator=g)")
    assert failing_seeds != DEAD_RELU
    target = write_target(tmp_path, failing_seeds)
    run = Process("run", target, "--out", tmp_path / "out", "--workers", 2, "--runs", 1000,
                  cwd=tmp_path)
    code = run.wait(timeout=120)
    assert code == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "already fails nonfinite" in errors[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_no_worker_outlives_a_parent_killed_with_sigkill(
        tmp_path: Path, healthy_target: Path) -> None:
    run = Process("run", healthy_target, "--out", tmp_path / "out", "--workers", 2, cwd=tmp_path)
    try:
        run.wait_for_line(lambda line: line.startswith("#"))
        workers = worker_pids(run.proc.pid)
        assert len(workers) == 2
        # In the parent's process group: a terminal's Ctrl-C and a CI runner's kill of the
        # group reach them too.
        assert {os.getpgid(pid) for pid in workers} == {os.getpgid(run.proc.pid)}
    finally:
        run.kill()  # SIGKILL: the parent can do nothing about its children
    assert_gone(workers, "a worker outlived its parent's SIGKILL")


@pytest.mark.slow
def test_max_time_bounds_the_whole_run_and_no_status_line_comes_before_a_worker_reports(
        tmp_path: Path, healthy_target: Path) -> None:
    out, max_time = tmp_path / "out", 3
    run = Process("run", healthy_target, "--out", out, "--workers", 2, "--max-time", max_time,
                  cwd=tmp_path)
    code = run.wait(timeout=120)
    assert code == 0, run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "reached --max-time"
    status = [line for line in run.stderr.splitlines() if line.startswith("#")]
    assert all(" cov: 0 " not in line for line in status), run.stderr
    for line in (out / "stats.jsonl").read_text().splitlines():
        assert json.loads(line)["corpus"] > 0, line


#: A model whose forward blocks for an hour once the file ``stuck`` exists beside it: a
#: worker that cannot stop at the deadline by itself.
STUCK_ON_SIGNAL = '''
import time
from pathlib import Path
import torch
from torch import nn

BOUNDS = (0.0, 1.0)
FLAG = Path(__file__).with_name("stuck")

class Stuck(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        if FLAG.exists():
            time.sleep(3600)
        return self.net(x)

def model():
    torch.manual_seed(0)
    return Stuck()

def seeds():
    return torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''


@pytest.mark.slow
def test_a_worker_stuck_past_the_deadline_is_terminated_and_the_run_ends_at_max_time(
        tmp_path: Path) -> None:
    """--max-time only has to outlast the workers' start-up, until the first status line
    (3-5 s on 2 cores; a Ray run's came after 8 s on a busy machine): then the flag makes
    every worker stuck, and what is tested (terminated 5 s after the deadline) follows
    whatever the deadline."""
    target = write_target(tmp_path, STUCK_ON_SIGNAL)
    out = tmp_path / "out"
    run = Process("run", target, "--out", out, "--workers", 2, "--max-time", 12, cwd=tmp_path)
    try:
        run.wait_for_line(lambda line: line.startswith("#"))  # the workers are fuzzing
        workers = worker_pids(run.proc.pid)
        (tmp_path / "stuck").touch()  # every worker's next forward blocks for an hour
        code = run.wait(timeout=180)
    finally:
        run.kill()
    assert code == 0, run.stderr
    assert run.stderr.count("did not stop within 5 s; terminated") == 2, run.stderr
    assert json.loads((out / "run.json").read_text())["stop_reason"] == "reached --max-time"
    assert_gone(workers, "a stuck worker outlived the run")


@pytest.mark.slow
def test_the_library_runs_workers_too_and_refuses_them_for_a_model_in_memory(
        tmp_path: Path, dead_relu_target: Path) -> None:
    out = tmp_path / "out"
    result = nnfuzz.fuzz_target(load_target(dead_relu_target), FuzzConfig(runs=4000), out=out,
                                workers=2)
    assert result.execs == 4000 and len(result.failures) == 1
    assert json.loads((out / "run.json").read_text())["runs"][0]["workers"] == 2
    target = load_target(dead_relu_target)
    with pytest.raises(nnfuzz.UsageError, match="target file"):
        nnfuzz.fuzz(target.model, target.seeds, out=tmp_path / "memory", runs=100, workers=2)


@pytest.mark.slow
def test_workers_say_and_record_what_their_engines_learnt_at_start_up_as_one_process_does(
        tmp_path: Path, in_process: Callable[..., InProcess]) -> None:
    from nnfuzz.status import RecordingReporter

    target = load_target(write_target(tmp_path, ZERO_HEAD))
    said = {}
    for name, workers in (("one", 1), ("two", 2)):
        reporter = RecordingReporter()
        config = FuzzConfig(runs=2000)
        if workers == 1:
            in_process(target, config, out=tmp_path / name, reporter=reporter).run()
        else:
            WorkerPool(target, config, tmp_path / name, None, workers, None, reporter).run()
        record = json.loads((tmp_path / name / "run.json").read_text())
        said[name] = ([w for w in reporter.warnings if w.startswith("coverage:")],
                      [i for i in reporter.infos if i.startswith(("coverage from layer",
                                                                   "coverage threshold"))],
                      record["coverage_layers"])
    one, two = said["one"], said["two"]
    assert one[0] == two[0] and len(one[0]) == 1, (one, two)  # the constant output, warned
    assert [i.split(";")[0] for i in one[1]] == [i.split(";")[0] for i in two[1]]
    assert any("coverage from layer 'body'" in info for info in two[1]), two
    assert one[2] == two[2] == ["body"], "run.json records the layer the workers fuzz on"
    # corpus minimize distils on the recorded layer: on a --workers corpus whose run.json
    # recorded none it found "0 cells beyond the seeds" and kept 15 of 522 inputs.
    from nnfuzz.distill import distill_corpus

    for name in ("one", "two"):
        kept = distill_corpus(target, tmp_path / name / "corpus", dry_run=True)
        assert kept.cells > 10, (name, kept.cells, len(kept.kept), len(kept.removed))


@pytest.mark.slow
def test_resumed_workers_start_from_the_threshold_the_folder_grew_to(
        tmp_path: Path, in_process: Callable[..., InProcess]) -> None:
    from nnfuzz.status import RecordingReporter

    target = load_target(write_target(tmp_path, HEALTHY))
    out = tmp_path / "out"
    first = in_process(target, FuzzConfig(runs=6000), out=out, reporter=RecordingReporter())
    try:
        seeds_threshold = first.engine.startup().threshold
        first.run()
    finally:
        first.close()
    grown = json.loads((out / "run.json").read_text())["threshold"]
    assert grown > seeds_threshold, "the first run should have grown its threshold"
    said = RecordingReporter()
    WorkerPool(target, FuzzConfig(runs=400), out, None, 2, None, said).run()
    [line] = [info for info in said.infos if info.startswith("coverage threshold")]
    assert line.startswith(f"coverage threshold {grown:.6g} "), (line, grown)
