"""The engine on a tiny model: one step, and the Campaign it feeds."""

from __future__ import annotations

import torch
from torch import nn

from nnfuzz.campaign import Campaign
from nnfuzz.config import FuzzConfig, StopReason
from nnfuzz.drivers.engine import run_slice
from nnfuzz.loop import Fuzzer
from nnfuzz.reproducer import Failure
from nnfuzz.target import in_memory


def tiny(nan_below: float | None = None):  # type: ignore[no-untyped-def]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x)
            if nan_below is not None:
                out = torch.where((x < nan_below).all(1, keepdim=True), out * float("nan"), out)
            return out

    seeds = 0.5 + 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    return in_memory(Model(), seeds, bounds=(0.0, 1.0))


def test_one_step_runs_a_batch_of_mutants_and_only_adds_to_the_corpus() -> None:
    target, config = tiny(), FuzzConfig(batch_size=50)
    fuzzer = Fuzzer(target, config, Campaign(target, config, None))
    try:
        before = len(fuzzer.corpus)
        fuzzer.step(50)
        assert fuzzer.execs == 50
        assert before <= len(fuzzer.corpus) <= before + 50
        assert fuzzer.progress().execs == 50
    finally:
        fuzzer.close()


def test_random_mutation_keeps_no_corpus() -> None:
    target, config = tiny(), FuzzConfig(batch_size=50, feedback=False)
    fuzzer = Fuzzer(target, config, Campaign(target, config, None))
    try:
        before = len(fuzzer.corpus)
        for _ in range(5):
            fuzzer.step(50)
        assert len(fuzzer.corpus) == before and fuzzer.execs == 250
    finally:
        fuzzer.close()


def test_a_failure_found_in_a_step_reaches_the_campaign_once_and_stops_it() -> None:
    target = tiny(nan_below=0.05)
    config = FuzzConfig(stop_on_failure=True, minimize=False)
    campaign = Campaign(target, config, None)
    fuzzer = Fuzzer(target, config, campaign)
    try:
        reason = run_slice(fuzzer, 60.0, campaign.stop_reason)
    finally:
        fuzzer.close()
    assert reason is StopReason.FAILURE
    [failure] = campaign.failures
    assert failure.objective == "nonfinite" and campaign.hits[failure.signature] >= 1


def test_the_campaign_takes_each_signature_once() -> None:
    target, config = tiny(), FuzzConfig()
    campaign = Campaign(target, config, None)
    for value in (0.1, 0.2):
        campaign.take(Failure(inputs=(torch.full((4,), value),), seed=(torch.ones(4),),
                              objective="nonfinite", detail="NaN", signature="nonfinite:head"))
    assert len(campaign.failures) == 1 and campaign.is_known("nonfinite:head")


def test_an_engine_dropped_without_close_takes_its_hook_with_it_at_once() -> None:
    from torch.nn.modules.module import _global_forward_hooks

    before = set(_global_forward_hooks)
    target, config = tiny(), FuzzConfig(batch_size=50)
    fuzzer = Fuzzer(target, config, Campaign(target, config, None))
    fuzzer.step(50)
    assert set(_global_forward_hooks) - before, "the engine registers its hook"
    del fuzzer  # no close(), and no gc.collect(): nothing may keep the engine alive
    assert set(_global_forward_hooks) == before


def test_a_batch_on_which_every_example_raises_is_a_finding_not_a_crash() -> None:
    # A Linear(2, 2) given one example without its batch dimension: the seeds, (2,), run as a
    # batch of two scalars, but every mutant alone raises (its input is (1,)).
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Linear(2, 2).eval()
    target = in_memory(model, torch.tensor([0.9, 0.1]), bounds=(0.0, 1.0))
    config = FuzzConfig(batch_size=50, minimize=False, descent=False)  # batches of 50 only
    campaign = Campaign(target, config, None)
    fuzzer = Fuzzer(target, config, campaign)
    try:
        for _ in range(3):
            fuzzer.step(50)
    finally:
        fuzzer.close()
    assert fuzzer.execs == 150
    assert [f.objective for f in campaign.failures] == ["exception"]
