"""Coverage from named layers, and resuming a run from its output folder."""

from pathlib import Path
from typing import Callable

import pytest
import torch

import nnfuzz
from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.target import load_target


def test_layer_activations_form_the_coverage_vector(
        healthy_target: Path, in_process: Callable[..., InProcess]) -> None:
    target = load_target(healthy_target)
    fuzzer = in_process(target, FuzzConfig(runs=500, layers=("1",)))
    assert fuzzer.engine.coverage.index.dim == 8, "the ReLU of the 4-8-2 MLP has 8 units"
    result = fuzzer.run()
    assert result.coverage >= len(target.seeds[0])


def test_two_layers_are_concatenated(
        healthy_target: Path, in_process: Callable[..., InProcess]) -> None:
    target = load_target(healthy_target)
    fuzzer = in_process(target, FuzzConfig(runs=100, layers=("0", "2")))
    assert fuzzer.engine.coverage.index.dim == 8 + 2


def test_an_unknown_layer_is_a_usage_error_naming_it(healthy_target: Path) -> None:
    target = load_target(healthy_target)
    with pytest.raises(nnfuzz.UsageError, match="'fc9'"):
        nnfuzz.fuzz(target.model, target.seeds, runs=10, layers="fc9")


def test_a_resumed_run_reloads_its_corpus_and_does_not_report_known_failures_again(
        dead_relu_target: Path, tmp_path: Path, in_process: Callable[..., InProcess]) -> None:
    target = load_target(dead_relu_target)
    out = tmp_path / "out"
    first = nnfuzz.fuzz(target.model, target.seeds, bounds=target.bounds, out=out, runs=20_000,
                        stop_on_failure=True)
    assert len(first.failures) == 1
    saved = {p.name for p in (out / "corpus").iterdir()}
    assert saved, "new coverage is saved in OUT/corpus"
    second = in_process(target, FuzzConfig(runs=2000), out=out)
    assert len(second.engine.corpus) >= len(target.seeds[0]) + len(saved)
    result = second.run()
    assert not result.failures, "the known signature is not new"
    assert saved <= {p.name for p in (out / "corpus").iterdir()}


def test_resumed_corpus_inputs_keep_their_seed_for_the_radius(dead_relu_target: Path,
                                                               tmp_path: Path,
        in_process: Callable[..., InProcess]) -> None:
    target = load_target(dead_relu_target)
    out = tmp_path / "out"
    nnfuzz.fuzz(target.model, target.seeds, bounds=target.bounds, out=out, runs=1000, radius=0.1)
    fuzzer = in_process(target, FuzzConfig(runs=0, radius=0.1), out=out)
    corpus = fuzzer.engine.corpus
    (inputs,), (roots,) = corpus.elements(), corpus.root_inputs(corpus.element_root_indices())
    assert len(inputs) > len(target.seeds[0])
    assert float((inputs - roots).abs().max()) <= 0.1 + 1e-6
    seeds = target.seeds[0]
    assert all(any(torch.equal(root, seed) for seed in seeds) for root in roots)


def test_a_single_seed_gets_a_threshold_from_its_first_mutants() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    seed = torch.rand(1, 4, generator=torch.Generator().manual_seed(0))
    result = nnfuzz.fuzz(model, seed, bounds=(0.0, 1.0), runs=500)
    assert result.threshold > 1e-3, "one seed has no spacing: its mutants give one"
    assert result.corpus > 1


def test_disagree_guides_by_default_with_its_margin_and_gap_as_low_only_records(
        in_process: Callable[..., InProcess]) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    seeds = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    target = nnfuzz.target.in_memory(model, seeds, bounds=(0.0, 1.0))
    plain = in_process(target, FuzzConfig(reference="fp16", objective_guidance=False))
    guided = in_process(target, FuzzConfig(reference="fp16"))
    extra = len(guided.engine.coverage.records.low) - len(plain.engine.coverage.records.low)
    assert extra == 2, "the margin of the top two classes and the gap to the reference"
    assert not guided.engine.coverage.records.track_high[-2:].any()
    assert guided.engine.coverage.records.track_high[:-2].all()


def test_the_loss_guides_by_default_and_objective_guidance_false_turns_it_off(
        in_process: Callable[..., InProcess]) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    seeds = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    target = nnfuzz.target.in_memory(
        model, seeds, bounds=(0.0, 1.0), targets=torch.zeros(8, dtype=torch.long),
        loss=lambda output, target: torch.nn.functional.cross_entropy(output, target, reduction="none"))
    default = in_process(target, FuzzConfig())
    off = in_process(target, FuzzConfig(objective_guidance=False))
    assert len(default.engine.coverage.records.low) == len(off.engine.coverage.records.low) + 1
    assert not default.engine.coverage.records.track_high[-1], "a new high loss is a new low of -loss"
