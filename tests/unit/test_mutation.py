"""Mutation: mutants keep shape, dtype, bounds and the radius around their seed."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz.inference import infer_domain
from nnfuzz.lineage import Batch
from nnfuzz.mutation import GUIDED_CHILDREN, MutationConfig, Mutator, distance, project
from nnfuzz.operators import MAX_TOKEN_RUN, NOISE_SCALES, delete_tokens, insert_tokens, replace_tokens

SETTINGS = settings(max_examples=30, deadline=None)
CHAIN = 5


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def float_problems(draw: st.DrawFn) -> dict:
    """Random float seeds inside random bounds, with an optional radius and a norm."""
    rows = draw(st.integers(1, 8))
    shape = draw(st.sampled_from([(rows, 3), (rows, 2, 5), (rows, 1)]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    # Quarters are exact in every float dtype, so bounds compare without rounding.
    low = draw(st.integers(-40, 20)) / 4
    high = low + draw(st.integers(1, 80)) / 4
    unit = torch.rand(shape, generator=generator(draw(st.integers(0, 2**31 - 1))),
                      dtype=torch.float64)
    seeds = (low + (high - low) * (0.02 + 0.96 * unit)).to(dtype)
    radius = draw(st.one_of(st.none(), st.floats(0.01, high - low)))
    norm = draw(st.sampled_from(["linf", "l2"]))
    return dict(seeds=seeds, low=low, high=high, radius=radius, norm=norm,
                rng_seed=draw(st.integers(0, 2**31 - 1)))


def radius_tolerance(radius: float, tensor: torch.Tensor, magnitude: float) -> float:
    """1e-5 relative to the radius, plus the rounding of values of this magnitude."""
    elements = math.prod(tensor.shape[1:]) or 1
    eps = torch.finfo(tensor.dtype).eps
    return 1e-5 * radius + 4 * math.sqrt(elements) * eps * max(magnitude, 1.0)


def assert_in_bounds(mutant: torch.Tensor, low: float, high: float) -> None:
    assert bool((mutant >= low).all()), f"mutant below {low}: {mutant.min()}"
    assert bool((mutant <= high).all()), f"mutant above {high}: {mutant.max()}"


def assert_within_radius(mutant: torch.Tensor, anchor: torch.Tensor, radius: float,
                         norm: str, magnitude: float) -> None:
    tolerance = radius_tolerance(radius, mutant, magnitude)
    for measure in ("linf", "l2") if norm == "l2" else ("linf",):
        # Inside an l2 ball of radius r, every coordinate is also within r (linf <= l2).
        gaps = distance(mutant, anchor, measure)
        assert bool((gaps <= radius + tolerance).all()), (
            f"{measure} distance {gaps.max().item()} exceeds radius {radius} ({norm} ball)")


# --- float inputs --------------------------------------------------------------------

@SETTINGS
@given(float_problems())
def test_float_mutants_keep_shape_dtype_and_bounds_and_stay_within_the_radius_of_their_seed(
        problem: dict) -> None:
    seeds = problem["seeds"]
    domain = infer_domain((seeds,), (problem["low"], problem["high"]))
    mutator = Mutator(domain, MutationConfig(problem["radius"], problem["norm"]))
    mutant = mutator.mutate((seeds,), (seeds,), generator(problem["rng_seed"]))[0]
    assert mutant.shape == seeds.shape
    assert mutant.dtype == seeds.dtype
    assert_in_bounds(mutant, problem["low"], problem["high"])
    if problem["radius"] is not None:
        magnitude = max(abs(problem["low"]), abs(problem["high"]))
        assert_within_radius(mutant, seeds, problem["radius"], problem["norm"], magnitude)


@SETTINGS
@given(float_problems())
def test_chains_of_float_mutations_stay_in_bounds_and_within_the_radius_of_their_anchor(
        problem: dict) -> None:
    seeds = problem["seeds"]
    domain = infer_domain((seeds,), (problem["low"], problem["high"]))
    mutator = Mutator(domain, MutationConfig(problem["radius"], problem["norm"]))
    rng = generator(problem["rng_seed"])
    current = (seeds,)
    magnitude = max(abs(problem["low"]), abs(problem["high"]))
    for _ in range(CHAIN):
        current = mutator.mutate(current, (seeds,), rng)
        assert current[0].shape == seeds.shape and current[0].dtype == seeds.dtype
        assert_in_bounds(current[0], problem["low"], problem["high"])
        if problem["radius"] is not None:
            assert_within_radius(current[0], seeds, problem["radius"], problem["norm"], magnitude)


@SETTINGS
@given(float_problems())
def test_the_gradient_guided_operator_keeps_mutants_in_bounds_and_within_the_radius(
        problem: dict) -> None:
    seeds = problem["seeds"]
    domain = infer_domain((seeds,), (problem["low"], problem["high"]))
    calls = []

    def gradient(inputs: tuple[torch.Tensor, ...], rng: torch.Generator):
        calls.append(inputs[0].shape[0])
        return tuple(torch.randn(t.shape, generator=rng, dtype=torch.float64).to(t.dtype)
                     for t in inputs)

    mutator = Mutator(domain, MutationConfig(problem["radius"], problem["norm"]), gradient)
    rng = generator(problem["rng_seed"])
    # A wide batch, so that the guided operator is drawn for some rows.
    batch = seeds.repeat(32, *([1] * (seeds.dim() - 1)))
    current = (batch,)
    magnitude = max(abs(problem["low"]), abs(problem["high"]))
    anchors = batch
    for _ in range(3):
        # A guided mutant may descend from another row (its group's parent): follow it.
        current, source = mutator.mutants(current, (anchors,), rng)
        if source is not None:
            anchors = anchors[source]
        assert current[0].shape == batch.shape and current[0].dtype == batch.dtype
        assert_in_bounds(current[0], problem["low"], problem["high"])
        if problem["radius"] is not None:
            assert_within_radius(current[0], anchors, problem["radius"], problem["norm"], magnitude)
    assert calls, "the guided operator was never used although a gradient was given"


def test_guided_mutants_step_along_the_gradient_s_sign_one_gradient_per_parent_and_scale_group(
) -> None:
    """A guided mutant is its parent plus the gradient's sign times a noise scale; one
    gradient serves GUIDED_CHILDREN of them, one at each scale."""
    # Distinct rows, so that each mutant's parent can be told; room to move both ways.
    seeds = 0.35 + 0.3 * torch.rand(400, 4, generator=generator(0))  # a step of 0.3 stays in
    domain = infer_domain((seeds,), (0.0, 1.0))
    direction = torch.tensor([1.0, -1.0, 2.0, -3.0])
    gradient_rows = []

    def gradient(inputs, rng):
        gradient_rows.append(inputs[0].shape[0])
        return (direction.expand_as(inputs[0]).clone(),)

    mutator = Mutator(domain, MutationConfig(), gradient)
    mutants, source = mutator.mutants((seeds,), (seeds,), generator(3))
    assert source is not None and len(gradient_rows) == 1
    steps = mutants[0] - seeds[source]
    scale_of = [next((k for k, scale in enumerate(NOISE_SCALES)
                      if torch.allclose(row, direction.sign() * scale, atol=1e-6)), None)
                for row in steps]
    guided = [row for row, scale in enumerate(scale_of) if scale is not None]
    # One gradient row per group of GUIDED_CHILDREN guided mutants.
    assert gradient_rows[0] == math.ceil(len(guided) / GUIDED_CHILDREN)
    groups: dict[int, list[int]] = {}
    for row in guided:
        groups.setdefault(int(source[row]), []).append(scale_of[row])
    assert len(groups) == gradient_rows[0]
    full = [scales for scales in groups.values() if len(scales) == GUIDED_CHILDREN]
    assert full and all(sorted(scales) == list(range(GUIDED_CHILDREN)) for scales in full)
    # The other mutants descend from their own row.
    others = torch.tensor([row for row in range(len(seeds)) if scale_of[row] is None])
    assert torch.equal(source[others], others)


def test_children_carry_the_lineage_and_the_other_inputs_of_the_parent_they_descend_from() -> None:
    values = 0.25 + 0.5 * torch.rand(200, 3, generator=generator(0))
    tokens = torch.arange(200).view(200, 1) % 7
    domain = infer_domain((values, tokens), [(0.0, 1.0), (0, 9)])

    def gradient(inputs, rng):
        return (torch.ones_like(inputs[0]), None)

    mutator = Mutator(domain, MutationConfig(), gradient)
    parents = Batch((values, tokens), root=torch.arange(200), depth=torch.arange(200) % 5,
                    index=torch.arange(200) + 1000)
    own, children = mutator.children(parents, (values, tokens), generator(4))
    moved = (own.root != parents.root).nonzero().flatten()
    assert len(moved), "no guided mutant descends from another row"
    leaders = own.root[moved]
    assert torch.equal(own.index[moved], leaders + 1000)
    assert torch.equal(children.depth, own.depth + 1) and torch.equal(children.root, own.root)
    # A guided mutant changed its float input only: its tokens are its parent's.
    assert torch.equal(children.inputs[1][moved], tokens[leaders])


def test_a_gradient_that_has_no_direction_falls_back_to_other_operators() -> None:
    seeds = torch.rand(32, 3, generator=generator(0))
    domain = infer_domain((seeds,), (0.0, 1.0))
    mutator = Mutator(domain, MutationConfig(), lambda inputs, rng: None)
    mutant = mutator.mutate((seeds,), (seeds,), generator(1))[0]
    assert mutant.shape == seeds.shape
    assert_in_bounds(mutant, 0.0, 1.0)


def test_mutation_changes_most_inputs() -> None:
    seeds = torch.rand(200, 2, 5, generator=generator(0))
    domain = infer_domain((seeds,), (0.0, 1.0))
    mutant = Mutator(domain).mutate((seeds,), (seeds,), generator(1))[0]
    changed = (mutant != seeds).flatten(1).any(1)
    assert float(changed.float().mean()) > 0.5


@SETTINGS
@given(float_problems())
def test_the_same_generator_seed_gives_identical_mutants(problem: dict) -> None:
    seeds = problem["seeds"]
    domain = infer_domain((seeds,), (problem["low"], problem["high"]))

    def gradient(inputs, rng):
        return tuple(torch.randn(t.shape, generator=rng).to(t.dtype) for t in inputs)

    mutator = Mutator(domain, MutationConfig(problem["radius"], problem["norm"]), gradient)
    first = mutator.mutate((seeds,), (seeds,), generator(problem["rng_seed"]))[0]
    second = mutator.mutate((seeds,), (seeds,), generator(problem["rng_seed"]))[0]
    assert torch.equal(first, second)


def test_different_generator_seeds_give_different_mutants() -> None:
    seeds = torch.rand(64, 3, generator=generator(0))
    domain = infer_domain((seeds,), (0.0, 1.0))
    mutator = Mutator(domain)
    first = mutator.mutate((seeds,), (seeds,), generator(1))[0]
    second = mutator.mutate((seeds,), (seeds,), generator(2))[0]
    assert not torch.equal(first, second)


# --- projection ----------------------------------------------------------------------

@SETTINGS
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 10.0), st.sampled_from(["linf", "l2"]),
       st.floats(0.1, 100.0))
def test_project_puts_every_point_inside_the_ball_around_its_anchor(
        rng_seed: int, radius: float, norm: str, spread: float) -> None:
    rng = generator(rng_seed)
    anchor = torch.randn(16, 2, 3, generator=rng)
    points = anchor + spread * torch.randn(16, 2, 3, generator=rng)
    projected = project(points, anchor, radius, norm)
    assert projected.shape == points.shape
    magnitude = float(anchor.abs().max()) + radius
    gaps = distance(projected, anchor, norm)
    assert bool((gaps <= radius + radius_tolerance(radius, projected, magnitude)).all())


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from(["linf", "l2"]))
def test_project_leaves_points_already_inside_the_ball_where_they_are(rng_seed: int,
                                                                     norm: str) -> None:
    rng = generator(rng_seed)
    anchor = torch.randn(8, 5, generator=rng)
    points = anchor + 0.01 * torch.rand(8, 5, generator=rng)
    projected = project(points, anchor, 1.0, norm)
    torch.testing.assert_close(projected, points, rtol=1e-6, atol=1e-6)


def test_project_moves_an_outside_point_onto_the_sphere_in_its_own_direction() -> None:
    anchor = torch.zeros(1, 2)
    point = torch.tensor([[3.0, 4.0]])
    projected = project(point, anchor, 1.0, "l2")
    torch.testing.assert_close(projected, torch.tensor([[0.6, 0.8]]), rtol=1e-5, atol=1e-5)
    clipped = project(point, anchor, 1.0, "linf")
    assert torch.equal(clipped, torch.tensor([[1.0, 1.0]]))


# --- integer inputs ------------------------------------------------------------------

@st.composite
def token_problems(draw: st.DrawFn) -> dict:
    rows = draw(st.integers(1, 8))
    length = draw(st.integers(2, 12))
    low = draw(st.integers(0, 5))
    high = low + draw(st.integers(1, 50))
    dtype = draw(st.sampled_from([torch.int64, torch.int32]))
    tokens = torch.randint(low, high + 1, (rows, length),
                           generator=generator(draw(st.integers(0, 2**31 - 1)))).to(dtype)
    return dict(tokens=tokens, low=low, high=high, rng_seed=draw(st.integers(0, 2**31 - 1)))


@st.composite
def padded_problems(draw: st.DrawFn) -> dict:
    """Token seeds of random lengths padded at the end with ``pad``."""
    rows = draw(st.integers(1, 8))
    length = draw(st.integers(2, 12))
    vocabulary = draw(st.integers(2, 30))
    pad = draw(st.sampled_from([0, vocabulary + 1]))
    rng = generator(draw(st.integers(0, 2**31 - 1)))
    tokens = torch.randint(1, vocabulary + 1, (rows, length), generator=rng)
    lengths = torch.randint(1, length, (rows, 1), generator=rng)
    tokens = torch.where(torch.arange(length).view(1, -1) < lengths, tokens, pad)
    return dict(tokens=tokens, pad=pad, low=0, high=vocabulary + 1,
                rng_seed=draw(st.integers(0, 2**31 - 1)))


@SETTINGS
@given(token_problems())
def test_token_mutants_keep_shape_dtype_and_values_inside_the_bounds(problem: dict) -> None:
    tokens = problem["tokens"]
    domain = infer_domain((tokens,), (problem["low"], problem["high"]))
    mutator = Mutator(domain, MutationConfig(radius=1.0))
    rng = generator(problem["rng_seed"])
    current = (tokens,)
    for _ in range(CHAIN):
        current = mutator.mutate(current, (tokens,), rng)
        assert current[0].shape == tokens.shape
        assert current[0].dtype == tokens.dtype
        assert_in_bounds(current[0], problem["low"], problem["high"])


@SETTINGS
@given(padded_problems())
def test_the_domain_finds_the_value_seeds_pad_with(problem: dict) -> None:
    domain = infer_domain((problem["tokens"],), (problem["low"], problem["high"]))
    assert domain.fields[0].pad == problem["pad"]


def _deletions(row: list[int], pad: int) -> list[list[int]]:
    length = len(row)
    return [(row[:where] + row[where + run:] + [pad] * length)[:length]
            for where in range(length) for run in range(1, MAX_TOKEN_RUN + 1)]


@SETTINGS
@given(padded_problems())
def test_delete_tokens_removes_a_run_and_fills_the_end_with_the_seeds_pad_value(
        problem: dict) -> None:
    tokens, pad = problem["tokens"], problem["pad"]
    field = infer_domain((tokens,), (problem["low"], problem["high"])).fields[0]
    mutant = delete_tokens(tokens, field, generator(problem["rng_seed"]))
    assert mutant.shape == tokens.shape and mutant.dtype == tokens.dtype
    assert bool((mutant[:, -1] == pad).all()), "the end of a sequence was not padded"
    for before, after in zip(tokens.tolist(), mutant.tolist()):
        assert after in _deletions(before, pad), f"{after} is no deletion of a run of {before}"


@SETTINGS
@given(token_problems())
def test_insert_tokens_shifts_the_rest_right_and_keeps_shape_and_bounds(problem: dict) -> None:
    tokens = problem["tokens"]
    field = infer_domain((tokens,), (problem["low"], problem["high"])).fields[0]
    mutant = insert_tokens(tokens, field, generator(problem["rng_seed"]))
    assert mutant.shape == tokens.shape and mutant.dtype == tokens.dtype
    assert_in_bounds(mutant, problem["low"], problem["high"])
    length = tokens.shape[1]
    for before, after in zip(tokens.tolist(), mutant.tolist()):
        assert any(after[:where] == before[:where]
                   and after[where + run:] == before[where:max(length - run, where)]
                   for where in range(length) for run in range(1, MAX_TOKEN_RUN + 1)), (
            f"{after} is no insertion into {before}")


@SETTINGS
@given(token_problems())
def test_replace_tokens_changes_at_most_one_token_and_keeps_shape_and_bounds(
        problem: dict) -> None:
    tokens = problem["tokens"]
    field = infer_domain((tokens,), (problem["low"], problem["high"])).fields[0]
    mutant = replace_tokens(tokens, field, generator(problem["rng_seed"]))
    assert mutant.shape == tokens.shape and mutant.dtype == tokens.dtype
    assert_in_bounds(mutant, problem["low"], problem["high"])
    assert bool(((mutant != tokens).sum(1) <= 1).all())


def test_token_operators_keep_the_shape_of_multi_dimensional_token_inputs() -> None:
    tokens = torch.randint(0, 10, (4, 3, 6), generator=generator(0))
    field = infer_domain((tokens,), (0, 9)).fields[0]
    for operator in (insert_tokens, delete_tokens, replace_tokens):
        mutant = operator(tokens, field, generator(1))
        assert mutant.shape == tokens.shape and mutant.dtype == tokens.dtype
        assert_in_bounds(mutant, 0, 9)


# --- mixed inputs --------------------------------------------------------------------

@SETTINGS
@given(float_problems(), st.integers(0, 2**31 - 1), st.integers(1, 40))
def test_mixed_float_and_token_inputs_keep_shape_dtype_bounds_and_radius(
        problem: dict, token_seed: int, vocabulary: int) -> None:
    values = problem["seeds"]
    tokens = torch.randint(0, vocabulary + 1, (values.shape[0], 5), generator=generator(token_seed))
    seeds = (values, tokens)
    bounds = [(problem["low"], problem["high"]), (0, vocabulary)]
    domain = infer_domain(seeds, bounds)

    def gradient(inputs, rng):
        return (torch.randn(inputs[0].shape, generator=rng, dtype=torch.float64)
                .to(inputs[0].dtype), None)

    mutator = Mutator(domain, MutationConfig(problem["radius"], problem["norm"]), gradient)
    rng = generator(problem["rng_seed"])
    current = seeds
    magnitude = max(abs(problem["low"]), abs(problem["high"]))
    for _ in range(CHAIN):
        current, source = mutator.mutants(current, seeds, rng)
        if source is not None:
            seeds = tuple(t[source] for t in seeds)
            values = seeds[0]
        assert len(current) == 2
        assert current[0].shape == values.shape and current[0].dtype == values.dtype
        assert current[1].shape == tokens.shape and current[1].dtype == tokens.dtype
        assert_in_bounds(current[0], problem["low"], problem["high"])
        assert_in_bounds(current[1], 0, vocabulary)
        if problem["radius"] is not None:
            assert_within_radius(current[0], values, problem["radius"], problem["norm"], magnitude)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_the_same_generator_seed_gives_identical_token_mutants(dtype: torch.dtype) -> None:
    tokens = torch.randint(0, 20, (16, 8), generator=generator(0)).to(dtype)
    domain = infer_domain((tokens,), (0, 20))
    mutator = Mutator(domain)
    first = mutator.mutate((tokens,), (tokens,), generator(5))[0]
    second = mutator.mutate((tokens,), (tokens,), generator(5))[0]
    assert torch.equal(first, second)
    assert not torch.equal(first, tokens), "no token mutant differs from its seed"


def pair_domain(**bounds: object):  # type: ignore[no-untyped-def]
    """Two float inputs of one shape (a Siamese pair) and a third of another shape."""
    g = generator(0)
    seeds = (torch.rand(8, 5, generator=g), torch.rand(8, 5, generator=g), torch.rand(8, 3, generator=g))
    return seeds, infer_domain(seeds, [(0.0, 1.0)] * 3)


def test_inputs_of_one_shape_and_kind_get_the_relational_operators_and_only_they() -> None:
    seeds, domain = pair_domain()
    mutator = Mutator(domain)
    assert mutator.siblings == {0: [1], 1: [0], 2: []}
    assert {"copy", "swap"} <= set(mutator.operators[0]) and {"copy", "swap"} <= set(mutator.operators[1])
    assert not {"copy", "swap"} & set(mutator.operators[2])
    no_edges = Mutator(domain, MutationConfig(edges=False))
    assert "swap" in no_edges.operators[0] and "copy" not in no_edges.operators[0]  # copy is an edge


def test_copy_makes_a_pair_equal_and_swap_exchanges_it() -> None:
    g = generator(0)
    seeds = (torch.rand(400, 5, generator=g), torch.rand(400, 5, generator=g))
    mutants = Mutator(infer_domain(seeds, [(0.0, 1.0)] * 2)).mutate(seeds, seeds, generator(3))
    equal = (mutants[0] == mutants[1]).all(1)
    swapped = (mutants[0] == seeds[1]).all(1) & (mutants[1] == seeds[0]).all(1)
    assert int(equal.sum()) >= 5 and int(swapped.sum()) >= 5
    # A copy is the sibling's value exactly: the other input of the row is left as it was.
    copied_first = equal & (mutants[1] == seeds[1]).all(1)
    copied_second = equal & (mutants[0] == seeds[0]).all(1)
    assert bool((copied_first | copied_second)[equal].all())
