"""--batch-size auto: the smallest size within 10% of the best rate, chosen from timings
given by a function (no wall clock here), reused by a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nnfuzz.batch_sizing import LOOP_SECONDS, MAX_FORWARD_SECONDS, SIZES, choose, sized
from nnfuzz.config import AUTO_BATCH, FuzzConfig, batch_size_value
from nnfuzz.errors import UsageError
from nnfuzz.execution import Executor


def linear_cost(fixed: float, per_input: float, tried: list[int] | None = None):  # type: ignore[no-untyped-def]
    def seconds_at(size: int) -> float:
        if tried is not None:
            tried.append(size)
        return fixed + per_input * size
    return seconds_at


def test_a_model_whose_cost_is_all_per_batch_gets_the_largest_size() -> None:
    assert choose(linear_cost(1e-4, 1e-8)).size == SIZES[-1] == 256


def test_a_model_whose_cost_is_all_per_input_gets_the_smallest_size_near_the_best() -> None:
    # 1 ms per input: the loop's 3 ms per batch is a tenth of a batch of 32's time, so every
    # size is within 10% of the best
    chosen = choose(linear_cost(0.0, 1e-3))
    best = 256 / (256e-3 + LOOP_SECONDS)
    assert chosen.size == min(s for s, r in chosen.rates if r >= 0.9 * best) == 32


def test_trying_stops_once_the_rate_stops_growing_two_sizes_in_a_row() -> None:
    tried: list[int] = []
    knee = {32: 1e-3, 64: 1e-3, 128: 20e-3, 256: 40e-3, 512: 80e-3, 1024: 160e-3}

    def seconds_at(size: int) -> float:
        tried.append(size)
        return knee[size]

    chosen = choose(seconds_at, sizes=tuple(knee))
    assert tried == [32, 64, 128, 256]
    assert chosen.size == 64


def test_a_slow_forward_pass_is_the_last_size_tried() -> None:
    tried: list[int] = []
    chosen = choose(linear_cost(2 * MAX_FORWARD_SECONDS, 0.0, tried))
    assert tried == [32] and chosen.size == 32


def test_a_size_that_does_not_fit_ends_the_search_at_the_last_that_did() -> None:
    def seconds_at(size: int) -> float | None:
        return None if size > 128 else 1e-5 * size
    assert choose(seconds_at).size == 128
    assert choose(lambda size: None).size == 32


def test_the_choice_says_each_rate_in_one_line() -> None:
    line = choose(linear_cost(1e-4, 1e-8)).describe()
    assert line.startswith("batch size auto: 256 (inputs/s")
    assert "32 -> " in line and "256 -> " in line and "\n" not in line


def test_the_option_takes_auto_or_a_positive_whole_number() -> None:
    assert batch_size_value("auto") == AUTO_BATCH
    assert batch_size_value("64") == 64
    for wrong in ("0", "-3", "big", "1.5"):
        with pytest.raises(ValueError):
            batch_size_value(wrong)
    with pytest.raises(UsageError, match="batch-size"):
        FuzzConfig(batch_size="large").check()
    FuzzConfig(batch_size=AUTO_BATCH).check()


def test_a_given_size_is_kept_and_a_resumed_run_reuses_the_recorded_one(tmp_path: Path) -> None:
    executor = Executor(nn.Linear(3, 2))
    seeds = (torch.rand(4, 3),)
    config, said = sized(FuzzConfig(batch_size=50), executor, seeds, None)
    assert config.batch_size == 50 and said == []
    (tmp_path / "corpus").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"batch_size": 256}))
    config, said = sized(FuzzConfig(batch_size=AUTO_BATCH), executor, seeds, tmp_path / "corpus")
    assert config.batch_size == 256 and "last run" in said[0]


def test_auto_without_a_record_times_the_model_and_says_so() -> None:
    executor = Executor(nn.Linear(3, 2))
    config, said = sized(FuzzConfig(batch_size=AUTO_BATCH), executor, (torch.rand(4, 3),), None)
    assert isinstance(config.batch_size, int) and config.batch_size >= 32
    assert len(said) == 1 and said[0].startswith(f"batch size auto: {config.batch_size} ")
