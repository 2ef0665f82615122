"""Schedule: the operators' shares of a batch follow what they yield, within bounds, and the
same yields always give the same rows."""

from __future__ import annotations

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nnfuzz.inference import infer_domain
from nnfuzz.mutation import GUIDED_COST, MutationConfig, Mutator
from nnfuzz.schedule import SPREAD, Schedule, bounded

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Schedule, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A schedule over 2..8 arms of random base shares and costs, and batches of random
    rows and yields."""
    arms = draw(st.integers(2, 8))
    base = draw(st.lists(st.integers(1, 10), min_size=arms, max_size=arms))
    costs = draw(st.lists(st.sampled_from([1.0, GUIDED_COST, 3.0]), min_size=arms, max_size=arms))
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        rows = draw(st.lists(st.integers(0, 50), min_size=arms, max_size=arms))
        yields = [draw(st.integers(0, r)) for r in rows]
        batches.append((torch.tensor(rows), torch.tensor(yields)))
    return Schedule([b / sum(base) for b in base], costs), batches


@SETTINGS
@given(histories(), st.integers(1, 1000))
def test_shares_sum_to_one_and_stay_within_a_factor_of_their_base(
        history: tuple[Schedule, list], size: int) -> None:
    schedule, batches = history
    for rows, yields in batches:
        schedule.observe(rows, yields)
        shares = schedule.shares()
        assert abs(float(shares.sum()) - 1.0) < 1e-9
        assert bool((shares >= schedule.base / SPREAD - 1e-12).all())
        assert bool((shares <= schedule.base * SPREAD + 1e-12).all())
        counts = schedule.counts(size)
        assert int(counts.sum()) == size and bool((counts >= 0).all())


@SETTINGS
@given(st.integers(2, 8), st.integers(0, 7), st.integers(2, 40))
def test_an_arm_that_yields_more_gets_more_rows(arms: int, lucky: int, kept: int) -> None:
    lucky %= arms
    schedule = Schedule([1 / arms] * arms, [1.0] * arms)
    rows = torch.full((arms,), 50)
    yields = torch.zeros(arms, dtype=torch.long)
    yields[lucky] = kept
    yields[(lucky + 1) % arms] = 1  # someone else yields a little
    schedule.observe(rows, yields)
    shares = schedule.shares()
    assert int(shares.argmax()) == lucky
    assert float(shares[lucky]) > 1 / arms
    assert int(schedule.counts(100)[lucky]) >= int(schedule.counts(100).max())


def test_of_two_arms_that_yield_alike_the_costlier_gets_fewer_rows() -> None:
    schedule = Schedule([0.5, 0.5], [1.0, GUIDED_COST])
    schedule.observe(torch.tensor([50, 50]), torch.tensor([10, 10]))
    shares = schedule.shares()
    assert float(shares[0]) > 0.5 > float(shares[1])


def test_before_any_yield_the_shares_are_the_base() -> None:
    schedule = Schedule([0.2, 0.3, 0.5], [1.0, 1.0, 1.75])
    assert torch.allclose(schedule.shares(), schedule.base)
    schedule.observe(torch.tensor([10, 10, 10]), torch.tensor([0, 0, 0]))
    assert torch.allclose(schedule.shares(), schedule.base)


def test_old_yields_fade() -> None:
    schedule = Schedule([0.5, 0.5], [1.0, 1.0])
    schedule.observe(torch.tensor([500, 500]), torch.tensor([100, 0]))
    early = float(schedule.shares()[0])
    for _ in range(40):  # then both arms yield alike
        schedule.observe(torch.tensor([500, 500]), torch.tensor([5, 5]))
    assert float(schedule.shares()[0]) < early
    assert abs(float(schedule.shares()[0]) - 0.5) < 0.05


@SETTINGS
@given(st.lists(st.floats(0.01, 100.0), min_size=2, max_size=8),
       st.lists(st.integers(1, 10), min_size=8, max_size=8))
# Clipping both sides at once fixed every share: the sum was 0.875. Clipping the high side
# first, then the low: 1.083 (the second share's low bound needs mass from the first).
@example([1.0, 1.0, 1.0, 1.0, 1.0, 20.0], [1] * 8)
@example([9.0, 1.0], [2, 7, 1, 1, 1, 1, 1, 1])
def test_bounded_shares_sum_to_one_within_their_bounds_in_proportion_where_free(
        weights: list[float], parts: list[int]) -> None:
    count = len(weights)
    base = torch.tensor(parts[:count], dtype=torch.float64)
    base = base / base.sum()
    low, high = base / SPREAD, (base * SPREAD).clamp(max=1.0)
    given_weights = torch.tensor(weights, dtype=torch.float64)
    shares = bounded(given_weights, low, high)
    assert abs(float(shares.sum()) - 1.0) < 1e-9
    assert bool((shares >= low - 1e-12).all()) and bool((shares <= high + 1e-12).all())
    free = (shares > low + 1e-12) & (shares < high - 1e-12)
    scales = shares[free] / given_weights[free]
    if len(scales) > 1:  # the shares not at a bound keep the weights' proportions
        assert float(scales.max() - scales.min()) <= 1e-9 * float(scales.max())


# --- the Mutator deals its rows by the schedule ---------------------------------------

def _mutator(schedule: bool = True) -> Mutator:
    seeds = (torch.rand(8, 5, generator=torch.Generator().manual_seed(0)),)
    domain = infer_domain(seeds, (0.0, 1.0))
    return Mutator(domain, MutationConfig(schedule=schedule), gradient=lambda inputs, rng: None)


def _dealt(mutator: Mutator, seed: int, size: int = 200) -> list[tuple[str, int]]:
    groups = mutator._rows_by_operator(size, torch.Generator().manual_seed(seed), torch.device("cpu"))
    return [(name, len(rows)) for (_, name), rows in groups]


def _observe_guided_yields(mutator: Mutator, seed: int) -> None:
    """A batch in which only the guided rows were kept."""
    inputs = (torch.rand(200, 5, generator=torch.Generator().manual_seed(1)),)
    mutator.mutants(inputs, inputs, torch.Generator().manual_seed(seed))
    assert mutator._dealt is not None
    guided = [name for _, name in mutator._pairs].index("guided")
    mutator.observe(mutator._dealt == guided)


def test_the_same_yields_and_seed_deal_the_same_rows() -> None:
    first, second = _mutator(), _mutator()
    for mutator in (first, second):
        _observe_guided_yields(mutator, 3)
    assert _dealt(first, 7) == _dealt(second, 7)
    assert torch.equal(first._dealt, second._dealt)


def test_the_mutator_gives_the_operator_that_yields_more_rows() -> None:
    mutator = _mutator()
    before = dict(_dealt(mutator, 5))
    for seed in range(3):
        _observe_guided_yields(mutator, seed)
    after = dict(_dealt(mutator, 5))
    assert after["guided"] > before["guided"]
    assert after["guided"] == max(after.values())


def test_without_a_schedule_or_before_a_batch_is_observed_rows_draw_as_before() -> None:
    scheduled, plain = _mutator(), _mutator(schedule=False)
    assert _dealt(scheduled, 11) == _dealt(plain, 11)
    _observe_guided_yields(plain, 3)  # no schedule: observing changes nothing
    assert _dealt(plain, 11) == _dealt(_mutator(schedule=False), 11)


def test_a_mask_of_another_batch_is_ignored() -> None:
    mutator = _mutator()
    inputs = (torch.rand(200, 5, generator=torch.Generator().manual_seed(1)),)
    mutator.mutants(inputs, inputs, torch.Generator().manual_seed(0))
    mutator.observe(torch.ones(16, dtype=torch.bool))  # a descent walk's 16 iterates
    assert mutator.schedule is not None and mutator.schedule.observed == 0
