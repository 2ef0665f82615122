"""The corpus: deduplication, folders with lineage, tolerant loading, sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnfuzz import CorpusError
from nnfuzz.corpus import Corpus
from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.inference import infer_domain
from nnfuzz.lineage import Batch
from nnfuzz.storage import content_hash, tensor_file_bytes
from tests.targets import inputs_in_folder

SEEDS = 4


def make_seeds() -> tuple[torch.Tensor, ...]:
    return (torch.rand(SEEDS, 3, generator=torch.Generator().manual_seed(0)),)


def make_corpus(folder: Path | None = None, seeds: tuple[torch.Tensor, ...] | None = None) -> Corpus:
    seeds = seeds or make_seeds()
    return Corpus(infer_domain(seeds, (0.0, 1.0)), seeds,
                  folder=CorpusFolder(folder) if folder is not None else None)


def mutants_of(seeds: tuple[torch.Tensor, ...], roots: list[int], depths: list[int]) -> Batch:
    rows = torch.tensor(roots)
    inputs = tuple(t[rows] * 0.5 + 0.01 * torch.arange(len(roots)).view(-1, 1) for t in seeds)
    return Batch(inputs, rows, torch.tensor(depths))


def as_rows(inputs: tuple[torch.Tensor, ...]) -> set[tuple]:
    return {tuple(tuple(t[row].flatten().tolist()) for t in inputs)
            for row in range(inputs[0].shape[0])}


def test_a_new_corpus_holds_the_seeds_as_their_own_roots() -> None:
    seeds = make_seeds()
    corpus = make_corpus(seeds=seeds)
    assert len(corpus) == SEEDS
    assert torch.equal(corpus.elements()[0], seeds[0])
    batch = corpus.sample(32, torch.Generator().manual_seed(0))
    for row in range(batch.size):
        root = int(batch.root[row])
        assert corpus.is_seed(root)
        assert torch.equal(batch.inputs[0][row], seeds[0][root])
        assert int(batch.depth[row]) == 0


def test_adding_the_same_input_twice_keeps_one() -> None:
    seeds = make_seeds()
    corpus = make_corpus(seeds=seeds)
    batch = mutants_of(seeds, [1], [1])
    assert corpus.add(batch) == 1
    assert corpus.add(batch) == 0
    assert len(corpus) == SEEDS + 1


def test_duplicates_within_one_batch_and_copies_of_seeds_are_not_added() -> None:
    seeds = make_seeds()
    corpus = make_corpus(seeds=seeds)
    twice = Batch((torch.cat([seeds[0][:1] * 0.5] * 2),), torch.tensor([0, 0]),
                  torch.tensor([1, 1]))
    assert corpus.add(twice) == 1
    assert corpus.add(Batch((seeds[0][2:3].clone(),), torch.tensor([2]), torch.tensor([1]))) == 0
    assert len(corpus) == SEEDS + 1


def test_added_inputs_are_saved_in_the_folder_named_by_content_hash(tmp_path: Path) -> None:
    seeds = make_seeds()
    corpus = make_corpus(tmp_path, seeds)
    batch = mutants_of(seeds, [1, 3], [2, 1])
    corpus.add(batch)
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(f"{content_hash((batch.inputs[0][row],))}.safetensors" for row in range(2))
    assert names == expected


def test_inputs_saved_in_a_folder_load_back_into_a_new_corpus(tmp_path: Path) -> None:
    seeds = make_seeds()
    corpus = make_corpus(tmp_path, seeds)
    corpus.add(mutants_of(seeds, [1, 3, 0], [2, 1, 5]))
    fresh = make_corpus(seeds=seeds)
    assert fresh.load_folder(CorpusFolder(tmp_path), strict=True) == 3
    assert len(fresh) == len(corpus)
    assert as_rows(fresh.elements()) == as_rows(corpus.elements())


def test_loaded_inputs_link_back_to_their_seed_root_and_depth(tmp_path: Path) -> None:
    seeds = make_seeds()
    corpus = make_corpus(tmp_path, seeds)
    batch = mutants_of(seeds, [1, 3], [2, 1])
    corpus.add(batch)
    fresh = make_corpus(seeds=seeds)
    fresh.load_folder(CorpusFolder(tmp_path), strict=True)
    everything = fresh.sample(256, torch.Generator().manual_seed(0))
    lineage = {}
    for row in range(everything.size):
        key = tuple(everything.inputs[0][row].tolist())
        lineage[key] = (int(everything.root[row]), int(everything.depth[row]))
    for row, (root, depth) in enumerate([(1, 2), (3, 1)]):
        key = tuple(batch.inputs[0][row].tolist())
        assert lineage[key] == (root, depth), (
            f"a saved mutant of seed {root} at depth {depth} loaded back as "
            f"root {lineage[key][0]} at depth {lineage[key][1]}")


def test_an_input_whose_seed_is_absent_loads_as_its_own_root(tmp_path: Path) -> None:
    seeds = make_seeds()
    corpus = make_corpus(tmp_path, seeds)
    corpus.add(mutants_of(seeds, [1], [2]))
    other_seeds = (torch.full((2, 3), 0.9),)
    fresh = make_corpus(seeds=other_seeds)
    fresh.load_folder(CorpusFolder(tmp_path), strict=True)
    assert len(fresh) == 3
    loaded = fresh.sample(64, torch.Generator().manual_seed(0))
    new_rows = [row for row in range(loaded.size) if not bool((loaded.inputs[0][row] == 0.9).all())]
    assert new_rows
    for row in new_rows:
        root = int(loaded.root[row])
        assert not fresh.is_seed(root)
        assert torch.equal(fresh.root_inputs(torch.tensor([root]))[0][0], loaded.inputs[0][row])


def test_loading_the_same_folder_twice_adds_nothing_new(tmp_path: Path) -> None:
    seeds = make_seeds()
    make_corpus(tmp_path, seeds).add(mutants_of(seeds, [0, 1], [1, 1]))
    fresh = make_corpus(seeds=seeds)
    fresh.load_folder(CorpusFolder(tmp_path), strict=True)
    fresh.load_folder(CorpusFolder(tmp_path), strict=True)
    assert len(fresh) == SEEDS + 2


def test_a_npy_input_of_the_right_shape_loads(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.full(3, 0.25, dtype=np.float32))
    corpus = make_corpus()
    assert corpus.load_folder(CorpusFolder(tmp_path), strict=True) == 1
    assert len(corpus) == SEEDS + 1
    assert as_rows((torch.full((1, 3), 0.25),)) <= as_rows(corpus.elements())


def test_loaded_inputs_are_clipped_into_the_bounds(tmp_path: Path) -> None:
    np.save(tmp_path / "wide.npy", np.array([-5.0, 0.5, 7.0], dtype=np.float32))
    corpus = make_corpus()
    corpus.load_folder(CorpusFolder(tmp_path), strict=True)
    elements = corpus.elements()[0]
    assert bool((elements >= 0).all() and (elements <= 1).all())
    assert as_rows((torch.tensor([[0.0, 0.5, 1.0]]),)) <= as_rows(corpus.elements())


def _write_bad_files(folder: Path) -> None:
    (folder / "garbage.safetensors").write_bytes(b"not a tensor file at all")
    np.save(folder / "wrong-shape.npy", np.zeros(5, dtype=np.float32))
    np.save(folder / "wrong-dtype.npy", np.zeros(3, dtype=np.float64))
    (folder / "wrong-count.safetensors").write_bytes(tensor_file_bytes(
        {"input.0": torch.zeros(3), "input.1": torch.zeros(3)}, {}))


def test_a_lenient_load_skips_unreadable_and_misshapen_files_with_a_warning(tmp_path: Path) -> None:
    seeds = make_seeds()
    make_corpus(tmp_path, seeds).add(mutants_of(seeds, [2], [1]))
    _write_bad_files(tmp_path)
    corpus = make_corpus(seeds=seeds)
    with pytest.warns(UserWarning) as caught:
        loaded = corpus.load_folder(CorpusFolder(tmp_path), strict=False)
    assert loaded == 1
    assert len(corpus) == SEEDS + 1
    message = " ".join(str(w.message) for w in caught)
    for name in ("garbage.safetensors", "wrong-shape.npy", "wrong-dtype.npy",
                 "wrong-count.safetensors"):
        assert name in message


@pytest.mark.parametrize("name", ["garbage.safetensors", "wrong-shape.npy", "wrong-dtype.npy",
                                  "wrong-count.safetensors"])
def test_a_strict_load_raises_corpus_error_for_a_bad_file(name: str, tmp_path: Path) -> None:
    _write_bad_files(tmp_path)
    for path in tmp_path.iterdir():
        if path.name != name:
            path.unlink()
    with pytest.raises(CorpusError) as caught:
        make_corpus().load_folder(CorpusFolder(tmp_path), strict=True)
    assert name in str(caught.value)


def test_a_npy_file_of_strings_is_skipped_with_a_warning_not_a_crash(tmp_path: Path) -> None:
    np.save(tmp_path / "words.npy", np.array(["ab", "cd", "ef"]))
    corpus = make_corpus()
    with pytest.warns(UserWarning, match="words.npy"):
        assert corpus.load_folder(CorpusFolder(tmp_path), strict=False) == 0
    assert len(corpus) == SEEDS


def test_a_strict_load_of_a_npy_file_of_strings_raises_corpus_error(tmp_path: Path) -> None:
    np.save(tmp_path / "words.npy", np.array(["ab", "cd", "ef"]))
    with pytest.raises(CorpusError, match="words.npy"):
        make_corpus().load_folder(CorpusFolder(tmp_path), strict=True)


def test_seeds_read_from_a_folder_skip_a_npy_file_of_strings(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.full(3, 0.5, dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array(["ab", "cd", "ef"]))
    inputs = inputs_in_folder(tmp_path)
    assert inputs is not None
    assert torch.equal(inputs[0], torch.full((1, 3), 0.5))


def test_seeds_read_from_a_folder_stack_its_inputs_and_skip_unreadable_files(
        tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.full(3, 0.25, dtype=np.float32))
    np.save(tmp_path / "b.npy", np.full(3, 0.75, dtype=np.float32))
    (tmp_path / "c.safetensors").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hi")
    inputs = inputs_in_folder(tmp_path)
    assert inputs is not None and len(inputs) == 1
    assert torch.equal(inputs[0], torch.tensor([[0.25] * 3, [0.75] * 3]))


def test_seeds_read_from_a_folder_of_mixed_shapes_are_a_corpus_error(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(3, dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros(4, dtype=np.float32))
    with pytest.raises(CorpusError):
        inputs_in_folder(tmp_path)


def test_a_file_that_is_not_an_input_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember to fuzz")
    corpus = make_corpus()
    with pytest.warns(UserWarning, match="notes.txt"):
        assert corpus.load_folder(CorpusFolder(tmp_path), strict=True) == 0
    assert len(corpus) == SEEDS


def test_temporary_files_and_subfolders_are_ignored_silently(tmp_path: Path,
                                                             recwarn: pytest.WarningsRecorder) -> None:
    (tmp_path / ".tmp-abc123").write_bytes(b"half written")
    (tmp_path / "sub").mkdir()
    corpus = make_corpus()
    assert corpus.load_folder(CorpusFolder(tmp_path), strict=False) == 0
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_loading_a_missing_folder_raises_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        make_corpus().load_folder(CorpusFolder(tmp_path / "absent"), strict=True)


def _grown_corpus() -> Corpus:
    seeds = make_seeds()
    corpus = make_corpus(seeds=seeds)
    for start in range(0, 40, 8):
        roots = [(start + i) % SEEDS for i in range(8)]
        inputs = (torch.rand(8, 3, generator=torch.Generator().manual_seed(start)),)
        corpus.add(Batch(inputs, torch.tensor(roots), torch.ones(8, dtype=torch.long)))
    return corpus


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 300))
def test_sampling_is_deterministic_for_a_seeded_generator_and_returns_only_elements(
        rng_seed: int, size: int) -> None:
    corpus = _grown_corpus()
    first = corpus.sample(size, torch.Generator().manual_seed(rng_seed))
    second = corpus.sample(size, torch.Generator().manual_seed(rng_seed))
    assert first.size == size
    assert torch.equal(first.inputs[0], second.inputs[0])
    assert torch.equal(first.root, second.root) and torch.equal(first.depth, second.depth)
    assert as_rows(first.inputs) <= as_rows(corpus.elements())
    seeds_batch = corpus.sample_seeds(size, torch.Generator().manual_seed(rng_seed))
    assert as_rows(seeds_batch.inputs) <= as_rows(make_seeds())
    assert bool((seeds_batch.depth == 0).all())


def test_sampling_reaches_both_recent_and_old_elements() -> None:
    corpus = _grown_corpus()
    batch = corpus.sample(400, torch.Generator().manual_seed(0))
    assert as_rows(batch.inputs) & as_rows(make_seeds()), "seeds are never sampled"
    newest = corpus.elements()[0][-1:]
    assert as_rows((newest,)) <= as_rows(batch.inputs), "the newest element is never sampled"
