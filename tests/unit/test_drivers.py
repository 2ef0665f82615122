"""The drivers' pure parts: a worker's random stream, its share of --runs and its devices,
the one stop rule, the one worker-side failure sink, the typed messages."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.drivers.pool import split_runs, worker_devices, worker_seed


def test_workers_get_their_own_random_streams_and_shares_of_the_runs() -> None:
    seeds = {worker_seed(0, index, restart) for index in range(4) for restart in range(3)}
    assert len(seeds) == 12 and worker_seed(0, 1, 0) == worker_seed(0, 1, 0)
    assert worker_seed(0, 1, 0) != worker_seed(1, 1, 0)
    assert split_runs(10, 3) == [4, 3, 3] and split_runs(None, 2) == [None, None]


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=16))
@settings(max_examples=50, deadline=None)
def test_the_shares_of_the_runs_add_up_and_differ_by_at_most_one(runs: int, workers: int) -> None:
    shares = split_runs(runs, workers)
    assert len(shares) == workers and sum(shares) == runs  # type: ignore[arg-type]
    assert max(shares) - min(shares) <= 1  # type: ignore[type-var,operator]


def test_without_cuda_every_worker_runs_on_the_device_asked_for() -> None:
    assert worker_devices(None, 3) == [None, None, None]
    assert worker_devices("cpu", 2) == ["cpu", "cpu"]


def test_one_stop_rule_in_its_order_for_every_driver() -> None:
    from nnfuzz.config import NO_DEADLINE, Deadline, FuzzConfig, StopReason, stop_reason

    config = FuzzConfig(runs=100, stop_on_failure=True)
    past, future = Deadline.after(-1.0), Deadline.after(3600.0)
    assert stop_reason(config, 0, found=False, deadline=future) is None
    assert stop_reason(config, 100, found=False, deadline=future) is StopReason.RUNS
    assert stop_reason(config, 0, found=False, deadline=past) is StopReason.MAX_TIME
    assert stop_reason(config, 100, found=True, deadline=past) is StopReason.FAILURE
    assert stop_reason(config, 100, found=True, deadline=past, stopped=True) is StopReason.STOPPED
    keep_going = FuzzConfig(runs=None, stop_on_failure=False)
    assert stop_reason(keep_going, 10**9, found=True, deadline=NO_DEADLINE) is None


def test_a_relay_sends_each_new_failure_once_as_bytes_and_counts_hits() -> None:
    import torch

    from nnfuzz.reproducer import Failure, failure_from_bytes
    from nnfuzz.drivers.engine import Relay

    sent: list[bytes] = []
    relay = Relay(sent.append, known={"old"})
    failure = Failure(inputs=(torch.ones(3),), seed=(torch.zeros(3),), objective="nonfinite",
                      detail="NaN", signature="nonfinite:head")
    assert relay.is_known("old") and not relay.is_known(failure.signature)
    relay.take(failure)
    relay.hit(failure.signature, 2)
    assert relay.is_known(failure.signature) and relay.sent == 1 and relay.hits[failure.signature] == 2
    assert failure_from_bytes(sent[0], "test").signature == failure.signature


def test_workers_progress_adds_their_intake_and_takes_the_largest_shared_sizes() -> None:
    from nnfuzz.drivers.engine import Progress

    one = Progress(execs=100, corpus=40, coverage=30, corpus_mb=1.5, kept_per_min=6.0,
                   threshold=0.2)
    two = Progress(execs=50, corpus=45, coverage=25, corpus_mb=1.0, kept_per_min=4.0,
                   threshold=0.3)
    both = Progress.of_workers([one, two], execs=175)
    assert both == Progress(execs=175, corpus=45, coverage=30, corpus_mb=1.5,
                            kept_per_min=10.0, threshold=0.3)
    assert Progress.of_workers([], execs=0) == Progress()


def test_a_pool_hears_each_kind_of_message_from_its_workers(tmp_path: Path,
                                                           healthy_target: Path) -> None:
    import torch

    from nnfuzz.config import FuzzConfig
    from nnfuzz.drivers.engine import Progress, StartUp
    from nnfuzz.drivers.messages import Done, Failed, Found, Ready, Status
    from nnfuzz.drivers.processes import WorkerPool
    from nnfuzz.errors import NnfuzzError
    from nnfuzz.reproducer import Failure
    from nnfuzz.status import RecordingReporter
    from nnfuzz.target import load_target

    reporter = RecordingReporter()
    pool = WorkerPool(load_target(healthy_target), FuzzConfig(), tmp_path / "out", None, 2,
                      None, reporter)
    try:
        startup = StartUp(domain=("x: image",), domain_warnings=(), warnings=("flat",),
                          infos=("layer",), threshold=0.5, threshold_from="from the seeds",
                          corpus=3, device="cpu", coverage_layers=("body",))
        pool._hear(Ready(0, startup))
        pool._hear(Ready(1, startup))  # said once
        assert reporter.infos.count("x: image") == 1 and reporter.warnings == ["flat"]
        assert pool.campaign.coverage_layers == ["body"]
        pool._hear(Status(0, Progress(execs=10)))
        failure = Failure(inputs=(torch.ones(3),), seed=(torch.zeros(3),), objective="nonfinite",
                          detail="NaN", signature="nonfinite:head")
        pool._hear(Found(1, failure.to_bytes()))
        pool._hear(Done(1, Progress(execs=20), {"nonfinite:head": 3}))
        assert pool._execs() == 30 and pool.finished == {1}
        assert [f.signature for f in pool.campaign.failures] == ["nonfinite:head"]
        assert pool.campaign.hits["nonfinite:head"] == 3
        assert pool._progress().threshold == 0.5  # no worker's threshold yet: the start's
        pool._hear(Failed(0, "seed 0 fails", None))
        assert isinstance(pool.error, NnfuzzError) and str(pool.error) == "seed 0 fails"
    finally:
        pool.campaign.close()
