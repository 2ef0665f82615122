"""The benchmark harness still runs against the library (its numbers live in benchmarks/)."""

from pathlib import Path

from benchmarks.finding import ZOO, first_failure_nnfuzz, first_failure_uniform
from nnfuzz.target import load_target


def test_the_finding_benchmark_finds_a_zoo_bug_that_uniform_sampling_misses() -> None:
    target = load_target(ZOO / "digits_std.py")
    found, seconds = first_failure_nnfuzz(target, 5_000, seed=0, feedback=True)
    assert found is not None and found <= 5_000 and seconds > 0
    missed, _ = first_failure_uniform(target, 2_000, seed=0, around_seeds=False)
    assert missed is None


def test_every_zoo_target_loads_with_its_bundled_seeds_and_weights() -> None:
    names = sorted(p.stem for p in Path(ZOO).glob("*.py") if not p.name.startswith(("_", "build")))
    assert names == ["digits_bucket", "digits_std", "tokens_meanpool"]
    for name in names:
        target = load_target(ZOO / f"{name}.py")
        assert target.seeds is not None and len(target.seeds[0]) == 32
