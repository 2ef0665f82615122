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
