"""nnfuzz.strategies: hypothesis strategies over a target's domain (issue 16, part 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings

import nnfuzz
from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.kinds import Tokens
from nnfuzz.target import in_memory
from tests.targets import write_target

LINEAR = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    torch.manual_seed(0)
    return nn.Linear(4, 2)

def seeds():
    return 0.5 * torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
'''

QUICK = settings(max_examples=60, database=None, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def no_constants_from_loaded_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis (6.131 on) also draws constants found in the source of every local module
    loaded so far (nnfuzz's, the targets' files), so a derandomized test draws, and shrinks,
    differently with what other tests happened to import before it: the planted failure
    below shrank to a filled input after `pytest tests/unit` and to one changed value after
    `pytest tests`. Without that pool these tests see the same examples in any order."""
    from hypothesis.internal.conjecture import providers

    if hasattr(providers, "_get_local_constants"):
        from hypothesis.internal.constants_ast import Constants

        monkeypatch.setattr(providers, "_get_local_constants", Constants)


def test_a_planted_failure_is_found_and_shrunk_toward_the_first_seed(tmp_path: Path) -> None:
    """Found although no seed is near it; shrunk toward "the first seed, unchanged" as far
    as hypothesis's shrinker gets: one changed value when the first failure it drew was an
    edit of a seed, a filled input (every value at a bound, one edited) when it was a fill,
    which no single shrink step turns into an edit: never farther from the seed than the
    first failure it found, and on the first seed."""
    target = nnfuzz.load_target(write_target(tmp_path, LINEAR))
    failing: list[torch.Tensor] = []

    @QUICK
    @given(nnfuzz.strategies.inputs(target))
    def property_that_fails(x: torch.Tensor) -> None:
        if float(x[0, 2] - x[0, 1]) > 0.6:  # the planted failure: unreachable from any seed
            failing.append(x)
            raise AssertionError("planted")

    with pytest.raises(AssertionError, match="planted"):
        property_that_fails()
    seeds = target.seeds[0]  # type: ignore[index]
    assert not any(float(seed[2] - seed[1]) > 0.6 for seed in seeds)
    first, shrunk = failing[0][0], failing[-1][0]  # hypothesis reruns the shrunk one last
    assert float(shrunk[2] - shrunk[1]) > 0.6
    changed = [int((x != seeds[0]).sum()) for x in (first, shrunk)]
    assert changed[1] <= changed[0]


def test_drawn_inputs_stay_in_the_domain_tokens_padding_masks_images_flags() -> None:
    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask, pixels, flags):  # noqa: ANN001, ANN201
            return input_ids.float().sum(1, keepdim=True)

    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0], [3, 4, 5, 6, 0]])
    seeds = {"input_ids": ids, "attention_mask": (ids != 0).long(),
             "pixels": torch.randint(0, 256, (3, 6), dtype=torch.uint8),
             "flags": torch.zeros(3, 2, dtype=torch.bool)}
    target = in_memory(Model(), seeds, inputs={"input_ids": Tokens(vocab=10, pad=0)})

    @QUICK
    @given(nnfuzz.strategies.inputs(target))
    def stays_valid(x: dict[str, torch.Tensor]) -> None:
        tokens = x["input_ids"][0]
        assert set(x) == set(seeds) and tokens.dtype == ids.dtype
        assert int(tokens.min()) >= 0 and int(tokens.max()) <= 9
        assert torch.equal(x["attention_mask"], (x["input_ids"] != 0).long())
        real = (tokens != 0).long()
        assert torch.equal(real, real.sort(descending=True).values), "padding only at the end"
        assert x["pixels"].dtype == torch.uint8 and x["flags"].dtype == torch.bool

    stays_valid()


def test_inputs_are_drawn_from_a_saved_corpus_folder_too(tmp_path: Path) -> None:
    target = nnfuzz.load_target(write_target(tmp_path, LINEAR))
    saved = torch.tensor([0.9, 0.1, 0.8, 0.2])  # no seed is near it, no fill or edit makes it
    folder = tmp_path / "corpus"
    folder.mkdir()
    CorpusFolder(folder).save((saved,), None, {})
    found = find(nnfuzz.strategies.inputs(target, corpus=folder),
                 lambda x: torch.equal(x[0], saved),
                 settings=settings(database=None, max_examples=2000, deadline=None))
    assert torch.equal(found[0], saved)


def test_a_missing_corpus_folder_is_a_usage_error(tmp_path: Path) -> None:
    target = nnfuzz.load_target(write_target(tmp_path, LINEAR))
    with pytest.raises(nnfuzz.UsageError, match="no such corpus folder"):
        find(nnfuzz.strategies.inputs(target, corpus=tmp_path / "nowhere"), lambda x: True)


def test_the_readme_property_runs_as_written_and_fails_on_a_planted_nan(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.cli.test_readme_examples import readme_targets

    (tmp_path / "model.py").write_text(readme_targets()["model.py"])
    (tmp_path / "test_model.py").write_text(readme_targets()["test_model.py"])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model.py"]
    clean = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    planted = readme_targets()["model.py"].replace(
        "def seeds():", "class NanAbove(nn.Module):\n    def forward(self, x):\n"
        "        return torch.where(x[:, :1] > 0.9, torch.nan, x)\n\n"
        "_model = model\ndef model():\n    return nn.Sequential(NanAbove(), _model())\n\n"
        "def seeds():")
    (tmp_path / "model.py").write_text(planted)
    broken = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert broken.returncode == 1, broken.stdout
    assert "FAILED test_model.py::test_the_model_gives_finite_scores" in broken.stdout
    assert "x = tensor([[" in broken.stdout, "hypothesis shows the example it shrank to"
