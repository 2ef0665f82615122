"""A corpus that stays bounded: the threshold adapts to the share kept, caps evict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nnfuzz
from nnfuzz.corpus import Corpus
from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.lineage import Batch
from nnfuzz.coverage import ADAPT_AFTER, ADAPT_EVERY, TARGET_KEPT_SHARE, Coverage
from nnfuzz.inference import infer_domain


def starting_vectors() -> torch.Tensor:
    """Four vectors from a stream of their own: torch's global one is wherever earlier tests
    left it (at manual_seed(0) it drew random_batches' first four rows, then not novel)."""
    return torch.rand(4, 16, generator=torch.Generator().manual_seed(1))


def random_batches(count: int, size: int = 100, dim: int = 16):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(0)
    for _ in range(count):
        yield torch.rand(size, dim, generator=generator)


def test_the_threshold_grows_until_the_share_kept_falls_under_the_target() -> None:
    start = 1e-3  # far below the spacing of random vectors: everything is novel at first
    coverage = Coverage(start, starting_vectors(), torch.zeros(4, 0))
    kept = []
    for vectors in random_batches(400):
        kept.append(int(coverage.update(vectors, torch.zeros(100, 0),
                                        torch.ones(100, dtype=torch.bool)).sum()))
    assert coverage.threshold > 100 * start
    late = sum(kept[-100:]) / (100 * 100)
    assert late <= TARGET_KEPT_SHARE, f"{late:.3%} of the last 10,000 mutants kept"
    assert sum(kept[:ADAPT_AFTER // 100]) > 0.9 * ADAPT_AFTER, "no adaptation before warm-up"


def test_a_threshold_the_user_gave_never_moves() -> None:
    coverage = Coverage(1e-3, starting_vectors(), torch.zeros(4, 0), adaptive=False)
    for vectors in random_batches(2 * (ADAPT_AFTER + ADAPT_EVERY) // 100):
        coverage.update(vectors, torch.zeros(100, 0), torch.ones(100, dtype=torch.bool))
    assert coverage.threshold == 1e-3


def grown_corpus(folder: Path, count: int) -> Corpus:
    seeds = (torch.rand(4, 3, generator=torch.Generator().manual_seed(0)),)
    corpus = Corpus(infer_domain(seeds, (0.0, 1.0)), seeds, folder=CorpusFolder(folder))
    inputs = (torch.rand(count, 3, generator=torch.Generator().manual_seed(1)),)
    corpus.add(Batch(inputs, torch.zeros(count, dtype=torch.long), torch.ones(count, dtype=torch.long)))
    return corpus


def test_past_its_cap_the_corpus_evicts_its_least_useful_inputs_and_their_files(
        tmp_path: Path) -> None:
    corpus = grown_corpus(tmp_path, 100)
    productive = torch.tensor([4, 5, 6])  # the first three added: the oldest, but with children
    corpus.credit(productive)
    gone = corpus.evict(max_elements=50, max_bytes=None)
    assert len(corpus) <= 50 and gone == 104 - len(corpus)
    elements = corpus.elements()[0]
    seeds = corpus.root_inputs(torch.arange(4))[0]
    assert torch.equal(elements[:4], seeds), "seeds are never evicted"
    everything = grown_corpus(tmp_path / "again", 100).elements()[0]
    assert torch.equal(elements[4:7], everything[4:7]), "inputs with kept children stay"
    files = sorted(p.stem for p in tmp_path.glob("*.safetensors"))
    assert len(files) == len(corpus) - 4
    assert corpus.evict(max_elements=50, max_bytes=None) == 0


def test_a_cap_in_bytes_bounds_the_corpus_too(tmp_path: Path) -> None:
    corpus = grown_corpus(tmp_path, 100)
    corpus.evict(max_elements=None, max_bytes=40 * 3 * 4)  # 40 inputs of three float32
    assert corpus.stored_bytes <= 40 * 3 * 4


def test_a_run_caps_its_corpus_says_how_it_grows_and_resumes_from_its_threshold(
        tmp_path: Path) -> None:
    seeds = torch.rand(16, 8, generator=torch.Generator().manual_seed(2))
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32))
    out = tmp_path / "out"
    first = nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), out=out, runs=6000, max_corpus=200)
    assert first.corpus <= 200
    assert len(list((out / "corpus").glob("*.safetensors"))) <= 200
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert {"corpus_mb", "kept_per_min", "threshold"} <= set(stats[-1])
    again = nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), out=out, runs=200, max_corpus=200)
    assert again.threshold >= first.threshold


def test_past_its_cap_the_novelty_index_starts_again_from_the_corpus_vectors() -> None:
    coverage = Coverage(1e-3, starting_vectors(), torch.zeros(4, 0), adaptive=False)
    for vectors in random_batches(30):
        coverage.update(vectors, torch.zeros(100, 0), torch.ones(100, dtype=torch.bool))
    assert len(coverage) == 3004 and coverage.index.bytes > 3004 * 16 * 4
    kept = torch.rand(50, 16, generator=torch.Generator().manual_seed(5))
    assert not coverage.forget(None, kept) and not coverage.forget(10 ** 9, kept)
    assert not coverage.forget(1024, None), "without the corpus's vectors it cannot start again"
    assert len(coverage) == 3004
    assert coverage.forget(1024, kept)
    assert len(coverage) == 50
    assert coverage.index.nearest(kept[:3].numpy()) == pytest.approx([0, 0, 0], abs=1e-3)


def test_a_flooding_run_keeps_its_novelty_index_within_its_cap() -> None:
    seeds = torch.rand(16, 8, generator=torch.Generator().manual_seed(2))
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32))
    cap_mb = 0.25  # about 1,600 vectors of 32 dims (flat: 128 bytes each)
    found = nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), runs=20_000, threshold=1e-4,
                        max_corpus=500, max_coverage_mb=cap_mb)
    unbounded = nnfuzz.fuzz(model, seeds, bounds=(0.0, 1.0), runs=20_000, threshold=1e-4,
                            max_corpus=500, max_coverage_mb=None)
    assert unbounded.coverage * 32 * 4 > 4 * cap_mb * 2**20, "the run did not flood"
    assert found.coverage * 32 * 4 <= cap_mb * 2**20 + 100 * 32 * 4, "one batch over the cap at most"
