"""Descent walks: many gradient steps the same way, inside the domain, paid by what they earn."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nnfuzz import descent as descent_module
from nnfuzz.campaign import Campaign
from nnfuzz.config import FuzzConfig
from nnfuzz.descent import Walk, pushed
from nnfuzz.execution_record import STATS
from nnfuzz.guidance import Push
from nnfuzz.lineage import Batch
from nnfuzz.loop import Fuzzer
from nnfuzz.mutation import input_distance
from nnfuzz.objectives.base import ObjectiveContext
from nnfuzz.objectives.loss import LossObjective
from nnfuzz.target import in_memory


def mlp() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def fuzzer(low: float = 0.0, high: float = 1.0, **options: object) -> Fuzzer:
    seeds = low + (high - low) * torch.rand(8, 6, generator=torch.Generator().manual_seed(1))
    target = in_memory(mlp(), seeds, bounds=(low, high))
    config = FuzzConfig(batch_size=32, minimize=False, **options)  # type: ignore[arg-type]
    return Fuzzer(target, config, Campaign(target, config, None))


@settings(max_examples=15, deadline=None)
@given(low=st.floats(-5, 5), width=st.floats(0.01, 10), radius=st.one_of(st.none(), st.floats(0.001, 2)),
       norm=st.sampled_from(["linf", "l2"]), seed=st.integers(0, 1000))
def test_every_step_of_a_walk_stays_in_the_bounds_and_the_radius(
        low: float, width: float, radius: float | None, norm: str, seed: int) -> None:
    engine = fuzzer(low, low + width, radius=radius, norm=norm, seed=seed)
    try:
        assert engine.descent is not None
        engine.descent.share = 1.0  # every batch a walk's step
        engine.step(32)  # a first batch of mutants: the records a walk can push
        walked = []
        while len(walked) < 6:
            iterates = engine.descent.next_iterates(engine.corpus, (engine.coverage.records.low,
                                                                    engine.coverage.records.high),
                                                    engine.rng)
            if iterates is None:
                continue
            walked.append(iterates)
            engine.descent.observe(torch.zeros(iterates.size, engine.layout.statistics + 1), 0)
        for iterates in walked:
            [x] = iterates.inputs
            assert bool((x >= low).all()) and bool((x <= low + width).all())
            if radius is not None:
                [seeds] = engine.corpus.root_inputs(iterates.root)
                for row in range(iterates.size):
                    moved = input_distance((x[row],), (seeds[row],), norm)
                    assert moved <= radius * (1 + 1e-5) + 1e-6
    finally:
        engine.close()


def test_one_gradient_pass_moves_each_start_by_its_own_push() -> None:
    engine = fuzzer()
    try:
        engine.step(32)
        relu = engine.executor.module_names.index("1")
        mean = relu * len(STATS) + STATS.index("mean")
        seeds = engine.corpus.root_inputs(torch.arange(8))
        before = engine.executor.run(seeds).stats[:, relu, STATS.index("mean")]
        # Even starts push the ReLU's mean down, odd ones up.
        [direction] = engine.mutator.gradient.direction(  # type: ignore[union-attr]
            seeds, [Push(mean, lower=True), Push(mean, lower=False)])
        stepped = (seeds[0] + 0.02 * direction.sign(),)
        moved = engine.executor.run(stepped).stats[:, relu, STATS.index("mean")] - before
        assert bool((moved[0::2] <= 0).all()) and bool((moved[1::2] >= 0).all())
        assert float(moved[0::2].sum()) < 0 < float(moved[1::2].sum())
    finally:
        engine.close()


def test_the_loss_descent_is_minus_the_loss_so_walking_it_down_raises_the_loss() -> None:
    model = mlp()
    objective = LossObjective(ObjectiveContext(model=model, loss=lambda out, y: nn.functional.cross_entropy(
        out, y, reduction="none")))
    quantity = objective.descent()
    x = torch.rand(5, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1])
    value = quantity(model(x), labels)
    expected = -nn.functional.cross_entropy(model(x), labels, reduction="none")
    torch.testing.assert_close(value, expected)
    [grad] = torch.autograd.grad(value.sum(), [x])
    with torch.no_grad():
        stepped = x - 0.05 * grad.sign()
        assert bool((nn.functional.cross_entropy(model(stepped), labels, reduction="none")
                     > -expected).all())


def walk_that(found: int, best: float, record: float) -> Walk:
    batch = Batch((torch.zeros(1, 6),), torch.zeros(1, dtype=torch.long),
                                torch.zeros(1, dtype=torch.long))
    pushes = [Push(0, True)]
    return Walk(batch, pushes, pushed(pushes, torch.device("cpu")), 0.01, torch.tensor([record]),
                torch.tensor([best]), found=found)


def test_the_share_of_walks_grows_with_what_they_earn_and_shrinks_without() -> None:
    engine = fuzzer()
    try:
        descent = engine.descent
        assert descent is not None
        start = descent.share
        descent.walk = walk_that(found=1, best=0.0, record=-1.0)  # a new failure
        descent.finish()
        assert math.isclose(descent.share, start * descent_module.EARN_STEP)
        descent.walk = walk_that(found=0, best=-2.0, record=-1.0)  # past the record
        descent.finish()
        assert descent.share > start * descent_module.EARN_STEP
        for _ in range(30):
            descent.walk = walk_that(found=1, best=0.0, record=-1.0)
            descent.finish()
        assert descent.share == descent_module.MAX_SHARE
        for _ in range(30):  # neither a failure nor a record
            descent.walk = walk_that(found=0, best=0.0, record=-1.0)
            descent.finish()
        assert descent.share == descent_module.MIN_SHARE
    finally:
        engine.close()


def test_walks_take_their_share_of_the_executions_and_no_more_than_a_walk_over() -> None:
    engine = fuzzer(runs=20_000)
    try:
        while engine.execs < 20_000:
            engine.step(min(32, 20_000 - engine.execs))
        descent = engine.descent
        assert descent is not None and descent.walks >= 1
        assert 0 < descent.spent <= descent_module.MAX_SHARE * engine.execs + (
            descent_module.MAX_STEPS * descent.width)
        assert engine.execs == 20_000
    finally:
        engine.close()


def test_no_walks_without_a_float_input_or_without_guidance() -> None:
    tokens = torch.randint(1, 50, (8, 6), generator=torch.Generator().manual_seed(0))
    target = in_memory(nn.Sequential(nn.Embedding(50, 4), nn.Flatten(), nn.Linear(24, 2)), tokens)
    config = FuzzConfig(minimize=False)
    engine = Fuzzer(target, config, Campaign(target, config, None))
    try:
        assert engine.descent is None
    finally:
        engine.close()
    for options in ({"descent": False}, {"guided": False}, {"feedback": False}):
        engine = fuzzer(**options)
        try:
            assert engine.descent is None
        finally:
            engine.close()
