"""Coverage vectors of real architectures, for the novelty index's parameters per width.

    python -m benchmarks.index_params --source resnet18   (or vit, vit-pooled)

benchmarks/index_params.py chose HNSW's parameters on a zoo target's 10-dim
outputs; the real architectures (benchmarks/architectures.py) give wider ones:
ResNet-18's 1,000-class output, the ViT's last hidden state as nnfuzz covers it
(its head is zero-initialised, so nnfuzz moves coverage to the `vit` module,
average-pooled to 4,096 values), and the same hidden state mean-pooled over its
65 tokens (192 values: a pooled layer of the width a `--layer` often has). The
real vectors are the plain model's on inputs like a fuzz run's mutants: the
architecture's seeds with Gaussian noise at nnfuzz's four noise scales, a
quarter of them uniform in the bounds instead (a fuzz run of the architecture
makes a few hundred a minute on this shared 2-core machine, too few). A
million are still too many to run, so the index's larger sizes are made from
them: each further vector is a real one plus Gaussian noise of PERTURBATION
times the real vectors' median nearest-neighbour distance, so that it lies
among the real ones rather than in empty space. Lookups query real vectors
the index has not stored (the last HELD_BACK made).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

#: The synthetic vectors' noise, as a share of the real vectors' median nearest-neighbour
#: distance: close to a real vector, but not a duplicate of one.
PERTURBATION = 0.5
#: Real vectors held back as queries (the run's last).
HELD_BACK = 3_000
#: Real vectors made per source.
REAL = 8_000


#: Noise scales of the inputs around the seeds, as shares of the bounds' width: nnfuzz's own
#: (nnfuzz.operators.NOISE_SCALES); a quarter of the inputs are uniform in the bounds instead.
SCALES = (0.003, 0.03, 0.1, 0.3)
UNIFORM_SHARE = 0.25


def _logits(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=pixels).logits  # (B, 1000)


def _vit_layer(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    from nnfuzz.coverage import pooled

    hidden = model.vit(pixel_values=pixels)[0]  # (B, 65, 192)
    return pooled(hidden.flatten(1))  # (B, 4096): as nnfuzz pools a layer it chose


def _vit_mean(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model.vit(pixel_values=pixels)[0].mean(1)  # (B, 192): the mean over the tokens


#: source name -> (architecture, the coverage vector of a batch of images).
SOURCES: dict[str, tuple[str, Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]]] = {
    "resnet18": ("resnet18", _logits),
    "vit": ("vit", _vit_layer),
    "vit-pooled": ("vit", _vit_mean),
}
#: What each source is, for the results.
WHAT = {
    "resnet18": "ResNet-18's 1,000-class output (logits; random weights, 3x64x64 images in [0, 1])",
    "vit": ("The ViT's last hidden state (65 tokens of 192), average-pooled to 4,096 values: the "
            "layer nnfuzz covers on its own, as the zero-initialised head's output is constant"),
    "vit-pooled": "The ViT's last hidden state mean-pooled over its 65 tokens: 192 values",
}
#: Index sizes per source: up to about what nnfuzz's index holds at that width before
#: max_coverage_mb (256 MB by default) starts it again from the corpus: some 15,000 vectors of
#: 4,096 dims, 60,000 of 1,000, 250,000 of 192 (with their graph's links). A million is
#: reached only by narrow vectors, such as the zoo's.
SIZES = {
    "vit-pooled": (10_000, 100_000, 250_000),
    "resnet18": (10_000, 60_000),
    "vit": (5_000, 15_000),
}


def real_vectors(source: str, wanted: int = REAL, batch: int = 100) -> np.ndarray:
    """The coverage vectors of ``wanted`` inputs in the bounds: the architecture's seeds with
    noise at one of SCALES (UNIFORM_SHARE of them uniform in the bounds instead), run through
    the plain model, batch by batch."""
    from benchmarks.architectures import ARCHITECTURES

    name, vector = SOURCES[source]
    architecture = next(a for a in ARCHITECTURES if a.name == name)
    model = architecture.build().eval()
    seeds = architecture.seeds()["pixel_values"]
    low, high = architecture.bounds
    generator = torch.Generator().manual_seed(0)
    parts = []
    with torch.no_grad():
        for _ in range(0, wanted, batch):
            picks = torch.randint(len(seeds), (batch,), generator=generator)
            scale = torch.tensor(SCALES)[torch.randint(len(SCALES), (batch,), generator=generator)]
            noise = torch.randn((batch, *seeds.shape[1:]), generator=generator)
            inputs = seeds[picks] + noise * (scale * (high - low)).view(-1, 1, 1, 1)
            uniform = torch.rand(batch, generator=generator) < UNIFORM_SHARE
            inputs[uniform] = low + (high - low) * torch.rand(
                (int(uniform.sum()), *seeds.shape[1:]), generator=generator)
            parts.append(vector(model, inputs.clamp(low, high)).float().numpy())
    return np.ascontiguousarray(np.concatenate(parts)[:wanted])


def extended(real: np.ndarray, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(``size`` vectors to store: the real ones but the last HELD_BACK, then perturbed copies
    of them; the held-back real ones, to query)."""
    stored, queries = real[:-HELD_BACK], real[-HELD_BACK:]
    spacing = median_spacing(stored)
    generator = np.random.default_rng(seed)
    parts, have = [stored[:size]], min(size, len(stored))
    while have < size:
        count = min(size - have, len(stored))
        picks = generator.integers(len(stored), size=count)
        noise = generator.standard_normal((count, stored.shape[1]), dtype=np.float32)
        scale = PERTURBATION * spacing / np.sqrt(stored.shape[1])  # the noise's norm ~ the share
        parts.append(stored[picks] + scale * noise)
        have += count
    return np.ascontiguousarray(np.concatenate(parts)), np.ascontiguousarray(queries)


def median_spacing(vectors: np.ndarray, sample: int = 2_000) -> float:
    """The median distance from (a sample of) the vectors to their nearest other."""
    import faiss

    picks = np.linspace(0, len(vectors) - 1, min(sample, len(vectors))).astype(np.int64)
    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    squared, _ = index.search(vectors[picks], 2)
    return float(np.median(np.sqrt(np.maximum(squared[:, 1], 0))))
