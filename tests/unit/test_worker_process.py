"""The worker process's pure parts: its random stream, its share of --runs, its devices."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.worker_process import split_runs, worker_devices, worker_seed


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
    import time as clock

    from nnfuzz.config import FuzzConfig, StopReason, stop_reason

    config = FuzzConfig(runs=100, stop_on_failure=True)
    past, future = clock.monotonic() - 1, clock.monotonic() + 3600
    assert stop_reason(config, 0, found=False, deadline=future) is None
    assert stop_reason(config, 100, found=False, deadline=future) is StopReason.RUNS
    assert stop_reason(config, 0, found=False, deadline=past) is StopReason.MAX_TIME
    assert stop_reason(config, 100, found=True, deadline=past) is StopReason.FAILURE
    assert stop_reason(config, 100, found=True, deadline=past, stopped=True) is StopReason.STOPPED
    keep_going = FuzzConfig(runs=None, stop_on_failure=False)
    assert stop_reason(keep_going, 10**9, found=True, deadline=None) is None


def test_a_relay_sends_each_new_failure_once_as_bytes_and_counts_hits() -> None:
    import torch

    from nnfuzz.reproducer import Failure, failure_from_bytes
    from nnfuzz.worker_process import Relay

    sent: list[bytes] = []
    relay = Relay(sent.append, known={"old"})
    failure = Failure(inputs=(torch.ones(3),), seed=(torch.zeros(3),), objective="nonfinite",
                      detail="NaN", signature="nonfinite:head")
    assert relay.is_known("old") and not relay.is_known(failure.signature)
    relay.take(failure)
    relay.hit(failure.signature, 2)
    assert relay.is_known(failure.signature) and relay.sent == 1 and relay.hits[failure.signature] == 2
    assert failure_from_bytes(sent[0], "test").signature == failure.signature
