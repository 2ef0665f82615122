"""The benchmark harness still runs against the library (its numbers live in benchmarks/)."""

from pathlib import Path

from benchmarks.finding import (CHAIN_TARGETS, TARGETS, ZOO, first_failure_nnfuzz,
                                first_failure_uniform)
from nnfuzz.target import load_target


def test_the_finding_benchmark_finds_a_zoo_bug_that_uniform_sampling_misses() -> None:
    target = load_target(ZOO / "digits_std.py")
    found, seconds = first_failure_nnfuzz(target, 5_000, seed=0, feedback=True)
    assert found is not None and found <= 5_000 and seconds > 0
    missed, _ = first_failure_uniform(target, 2_000, seed=0, around_seeds=False)
    assert missed is None


def test_every_zoo_target_loads_with_its_bundled_seeds_and_weights() -> None:
    names = sorted(p.stem for p in Path(ZOO).glob("*.py") if not p.name.startswith(("_", "build")))
    assert names == ["chain_std", "chain_xent", "digits28_crop", "digits_bucket", "digits_cosine", "digits_int8",
                     "digits_logsoftmax", "digits_safesqrt", "digits_salient", "digits_softplus",
                     "digits_std", "digits_xent", "sensor_fp16", "sensor_layernorm",
                     "tokens_attention", "tokens_meanpool"]
    for name in names:
        target = load_target(ZOO / f"{name}.py")
        assert target.seeds is not None and len(target.seeds[0]) == 32
    # The guided chains group is its own benchmark (benchmarks/chains.py), not the zoo table's.
    assert CHAIN_TARGETS == ("chain_std", "chain_xent")
    assert sorted(TARGETS + CHAIN_TARGETS) == names


def test_the_index_benchmark_times_lookups_at_tiny_sizes() -> None:
    from benchmarks.index import grow_and_measure

    points = grow_and_measure(8, (3_000, 5_000), lookups=3)
    assert [p.size for p in points] == [3_000, 5_000]
    for point in points:
        assert len(point.lookup_ms) == 3 and min(point.lookup_ms) > 0
        assert point.add_s > 0 and 0.0 <= point.exact <= 1.0


def test_the_throughput_benchmark_gives_a_positive_ratio_for_a_few_hundred_execs() -> None:
    from benchmarks.throughput import measure

    found = measure("tiny MLP 64-32-10", batch=100, runs=300, repeats=1)
    assert found.ratio > 0 and len(found.raw_s) == len(found.nnfuzz_s) == 1
    # each repetition also runs without walks, and without any gradient pass
    assert len(found.no_walks_s) == len(found.no_gradients_s) == 1


def test_the_throughput_benchmark_measures_auto_at_the_size_it_chose() -> None:
    from benchmarks.throughput import measure

    found = measure("tiny MLP 64-32-10", batch="auto", runs=300, repeats=1)
    assert found.auto and found.batch >= 32 and found.ratio > 0


def test_the_host_transfers_of_a_step_are_counted_by_call_site() -> None:
    from benchmarks.throughput import host_transfers

    steps, rows = host_transfers("tiny MLP 64-32-10", batch=50, batches=4)
    assert steps >= 1 and rows[-1][0] == "**all**"
    assert any("nonfinite" in where for where, _, _ in rows)


def test_results_md_reads_finding_md_back_with_the_command_that_wrote_it() -> None:
    from benchmarks.report import finding_heading

    heading = finding_heading("Budget 50,000 executions per search, run seeds 0..4; ...")
    assert heading.startswith("## ") and "--budget 50000 --seeds 5" in heading


def test_the_real_architectures_section_fuzzes_a_model_and_reads_its_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.architectures import ARCHITECTURES
    from benchmarks.real_architectures import BATCH, fuzz_for

    lstm = next(a for a in ARCHITECTURES if a.name == "lstm")
    # A budget of executions, not of seconds: on a busy machine set-up can take a whole second.
    measured = fuzz_for(lstm, 600.0, tmp_path / "out", runs=2 * BATCH)
    assert measured["found"] == "clean" and measured["execs_per_s"] > 0
    assert measured["layer"] == "output"


def test_index_params_thinning_keeps_the_first_vector_of_each_cell_in_stream_order() -> None:
    import numpy as np

    from benchmarks.index_params import thinned

    spread = np.random.default_rng(0).standard_normal((200, 3)).astype(np.float32)
    stream = np.concatenate([spread[:100], spread[:100] + 1e-6, spread[100:]])
    kept = thinned(stream)
    assert len(kept) == 200
    assert np.array_equal(kept[:100], spread[:100]) and np.array_equal(kept[100:], spread[100:])


def test_index_params_chooses_the_fastest_setting_that_is_exact_enough_at_every_size() -> None:
    from benchmarks.index_params import Point, chosen

    def point(degree: int, size: int, ms: float, exact: float) -> Point:
        return Point(degree, 16, size, ms, exact, 100.0, 1.0)

    points = [point(8, 10, 1.0, 0.99), point(8, 100, 2.0, 0.90),     # fastest, misses at 100
              point(16, 10, 1.5, 0.99), point(16, 100, 3.0, 0.97),
              point(32, 10, 2.0, 1.0), point(32, 100, 4.0, 0.99)]
    assert chosen(points) == (16, 16)
    assert chosen([point(8, 10, 1.0, 0.5)]) is None


def test_a_results_section_ends_with_its_load_and_is_flagged_when_measured_busy(
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os

    from benchmarks.machine import load_line

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.0, 0.0))
    quiet = load_line("...; load average 0.30 at the start")
    assert "0.30 at the start, 0.40 at the end" in quiet and "under load" not in quiet
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 0.0, 0.0))
    assert "**Measured under load** (above 1.5 on 2 cores)" in load_line("load average 0.30 at the start")


def test_the_training_benchmark_runs_its_three_searches_and_measures_clean_training() -> None:
    from benchmarks.training import ZOO, clean_maxima, search

    target = ZOO / "lr_diverges.py"
    # The top of its lr range diverges within steps; plain training draws lr in range too.
    found, steps, _, rate = search(target, "nnfuzz train", 20_000, 0)
    assert found and 0 < steps <= 20_000 and rate > 0
    # GRIST's move keeps the default lr, which trains cleanly on this target: 10 restarts.
    assert search(target, "GRIST's move alone", 640, 0)[:2] == (False, 640)
    norm, dead, ratio = clean_maxima(target, shuffles=2)
    assert 0 < norm < 1e5 and dead == 0.0 and 0 < ratio < 10, "clean training stays clean"
