"""The guided chains group (benchmarks/zoo/chain_*.py): what makes each a chain, and that
descent walks reach them where one-step mutations do not.

Each bug must sit inside BOUNDS, away from every edge the edge operator tries
(the blank input, a constant, every value at a bound), and out of reach of
random mutation; a signed-gradient walk from the seeds must reach it. All of
this is checked here on the bundled weights, so that a rebuild of the zoo that
loses it fails. The searches are deterministic for a run seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nnfuzz
from nnfuzz.config import FuzzConfig
from nnfuzz.target import load_target

ZOO = Path(__file__).resolve().parents[2] / "benchmarks" / "zoo"
BUDGET = 20_000


def edges(low: float, high: float, width: int) -> torch.Tensor:
    """What the edge operator can make of a (width,) input: constants from low to high."""
    return torch.linspace(low, high, 161).view(-1, 1).expand(161, width).contiguous()


def failing(target: nnfuzz.Target, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Which rows fail: a non-finite output, or a non-finite loss or input gradient."""
    model = target.model.eval()
    x = inputs.clone().requires_grad_(True)
    output = model(x)
    bad = ~torch.isfinite(output).all(1)
    if target.loss is not None and labels is not None:
        loss = target.loss(output, labels)
        [grad] = torch.autograd.grad(loss.sum(), [x])
        bad |= ~torch.isfinite(loss) | ~torch.isfinite(grad).all(1)
    return bad


def walk(target: nnfuzz.Target, quantity, steps: int, step: float) -> int:  # type: ignore[no-untyped-def]
    """Signed-gradient ascent of ``quantity`` from every seed, clipped to BOUNDS: the first
    step at which some walk fails, or -1."""
    low, high = target.bounds  # type: ignore[misc]
    x = target.seeds[0].clone()
    labels = target.labels
    for number in range(steps):
        if bool(failing(target, x, labels).any()):
            return number
        x.requires_grad_(True)
        [grad] = torch.autograd.grad(quantity(x).sum(), [x])
        x = (x.detach() + step * grad.sign()).clamp(low, high)
    return -1


def found(target: nnfuzz.Target, **options: object) -> bool:
    config = FuzzConfig(runs=BUDGET, seed=0, stop_on_failure=True, minimize=False, **options)  # type: ignore[arg-type]
    return bool(nnfuzz.fuzz_target(target, config).failures)


@pytest.mark.parametrize("name", ["chain_std", "chain_xent"])
def test_no_seed_and_no_edge_triggers_the_bug(name: str) -> None:
    target = load_target(ZOO / f"{name}.py")
    low, high = target.bounds  # type: ignore[misc]
    [seeds] = target.seeds
    labels = target.labels
    assert not bool(failing(target, seeds, labels).any())
    constants = edges(low, high, seeds.shape[1])
    constant_labels = None if labels is None else labels[:1].expand(len(constants))
    assert not bool(failing(target, constants, constant_labels).any())


def test_every_hidden_unit_dead_is_reached_by_walking_the_hidden_mean_down() -> None:
    target = load_target(ZOO / "chain_std.py")
    model = target.model
    first = walk(target, lambda x: -model.relu(model.hidden(x / 16)).mean(1), steps=200, step=0.16)
    assert first > 1  # a chain of steps, not one


def test_the_logit_margin_is_reached_by_walking_the_loss_up_for_scores_of_steps() -> None:
    target = load_target(ZOO / "chain_xent.py")
    model, labels = target.model, target.labels
    first = walk(target, lambda x: target.loss(model(x), labels), steps=400, step=0.16)  # type: ignore[misc]
    assert first >= 50


@pytest.mark.parametrize("name", ["chain_std", "chain_xent"])
def test_descent_walks_find_what_random_mutation_does_not(name: str) -> None:
    target = load_target(ZOO / f"{name}.py")
    assert found(target)
    assert not found(target, feedback=False)


def test_without_descent_walks_the_dead_units_are_not_reached() -> None:
    assert not found(load_target(ZOO / "chain_std.py"), descent=False)


def first_found(target: nnfuzz.Target, seed: int, batch_size: int, budget: int) -> int | None:
    config = FuzzConfig(runs=budget, seed=seed, stop_on_failure=True, minimize=False,
                        batch_size=batch_size)
    failures = nnfuzz.fuzz_target(target, config).failures
    return int(failures[0].metadata["found_after_execs"]) if failures else None


def test_larger_batches_keep_the_walks_steps() -> None:
    """A walk is paid in executions: when its width grew with the batch (an eighth of it), a
    walk at batch 256 took half the steps for its share, and chain_xent, which needs scores of
    steps, was found within 5,000 executions in 1 of these 3 runs (11,392 and none within
    20,000 in the others). With walks as wide at every batch size, all 3."""
    target = load_target(ZOO / "chain_xent.py")
    found_after = [first_found(target, seed, 256, 5_000) for seed in (2, 3, 7)]
    assert all(execs is not None for execs in found_after), found_after
