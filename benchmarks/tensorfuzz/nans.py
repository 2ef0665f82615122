"""(a) A NaN loss from a hand-written, unstable cross-entropy on a digits classifier."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from benchmarks.tensorfuzz.common import (
    Search,
    TEST_SIZE,
    accuracy,
    cached,
    command,
    digits,
    guides_by_default,
    provenance,
    search,
    split,
    spread,
    train,
    unstable_cross_entropy,
    write,
)

# --- (a) nans: a digits classifier with the unstable cross-entropy ----------------------

class DigitsMLP(nn.Module):
    """64-H-10 ReLU MLP on flattened digits, divided by ``scale`` inside the model."""

    def __init__(self, hidden: int = 32, scale: float = 16.0) -> None:
        super().__init__()
        self.scale = scale
        self.hidden = nn.Linear(64, hidden)
        self.relu = nn.ReLU()
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.hidden(x / self.scale)))


#: Adam steps (lr 1e-3, batch 100) for the nans model. Trained longer (10,000
#: steps), or with lr 1e-2, its logits spread so far on digits that one
#: mutation of a seed gives a NaN loss and random search finds it as fast.
NANS_STEPS = 5000
NANS_SEEDS = 32


def nans_model() -> tuple[nn.Module, bool, dict[str, float]]:
    images, labels, _, _ = split(*digits())
    info: dict[str, float] = {}

    def fit(model: nn.Module) -> None:
        info.update(train(model, images, labels, steps=NANS_STEPS, batch=100, unstable=True,
                          optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), seed=1))

    model, trained = cached(f"nans-digits-64-32-10-adam-{NANS_STEPS}", DigitsMLP, fit,
                            init_seed=1)
    return model, trained, info


def logit_spread(logits: torch.Tensor) -> torch.Tensor:
    """Largest minus smallest logit per example: past ~104 the unstable loss is NaN."""
    return logits.amax(-1) - logits.amin(-1)


def largest_spread(model: nn.Module, low: float, high: float, shape: tuple[int, ...],
                   steps: int = 300) -> float:
    """The largest logit spread signed-gradient ascent finds inside the bounds (256 starts):
    shows the NaN is reachable by a valid input."""
    generator = torch.Generator().manual_seed(0)
    x = (low + (high - low) * torch.rand((256, *shape), generator=generator)).requires_grad_()
    step = (high - low) / 32
    for _ in range(steps):
        grad, = torch.autograd.grad(logit_spread(model(x)).sum(), x)
        with torch.no_grad():
            x += step * grad.sign()
            x.clamp_(low, high)
    with torch.no_grad():
        return float(logit_spread(model(x)).max())


def nans(quick: bool) -> None:
    started = time.perf_counter()
    budget, runs = (20_000, 5) if quick else (100_000, 5)
    max_time = 60.0
    model, trained, info = nans_model()
    _, _, test_images, test_labels = split(*digits())
    seeds, labels = test_images[:NANS_SEEDS], test_labels[:NANS_SEEDS]
    with torch.no_grad():
        logits = model(seeds)
        seed_loss = unstable_cross_entropy(logits, labels)
        test_loss = unstable_cross_entropy(model(test_images), test_labels)
    if not bool(torch.isfinite(seed_loss).all()):
        raise SystemExit("a seed already has a non-finite loss: the planted bug is not a bug")
    reachable = largest_spread(model, 0.0, 16.0, (64,))
    options = dict(bounds=(0.0, 16.0), targets=labels, loss=unstable_cross_entropy,
                   objectives=["loss"], budget=budget, max_time=max_time, stop_on="loss:loss")
    rows: dict[str, list[Search]] = {}
    default = guides_by_default("loss")
    searchers = {
        f"nnfuzz, `objective_guidance={guidance}`{' (default)' if guidance == default else ''}":
            {"objective_guidance": guidance} for guidance in (True, False)}
    searchers["random mutation (`feedback=False`)"] = {"feedback": False}
    for searcher, extra in searchers.items():
        rows[searcher] = []
        for seed in range(runs):
            found = search(model, seeds, seed=seed, **extra, **options)
            rows[searcher].append(found)
            print(f"nans | {searcher} | run seed {seed} | {found}", flush=True)
    elapsed = time.perf_counter() - started
    lines = [
        "## TensorFuzz (a): a NaN (or Inf) loss from an unstable cross-entropy",
        "",
        f"`{command('nans', quick)}` — {elapsed:.0f} s wall-clock "
        f"({'trained the model first' if trained else 'weights from the cache'}); "
        f"{provenance()}.",
        "",
        "A 64-32-10 ReLU MLP on scikit-learn digits (inputs in [0, 16], divided by 16 inside the "
        f"model), trained {NANS_STEPS:,} Adam steps (lr 1e-3, batch 100) on "
        f"{1797 - TEST_SIZE:,} images with the hand-written cross-entropy "
        "`-sum(t * log(exp(z) / exp(z).sum()))` ("
        + (f"{int(info['fallback_steps'])} steps fell back to the stable loss, where the "
           "unstable one was not finite; " if trained else "")
        + "test accuracy "
        f"{accuracy(model, test_images, test_labels):.3f}). The target's `loss(output, target)` "
        f"is that cross-entropy and `targets()` the seeds' labels; {NANS_SEEDS} held-out test "
        "images are the seeds, `BOUNDS = (0, 16)`, no radius. The bug is real: the loss is "
        f"finite on every seed (and on {int(torch.isfinite(test_loss).sum())} of the "
        f"{len(test_images)} test images), the seeds' logit spread "
        f"(largest minus smallest logit) is at most {float(logit_spread(logits).max()):.1f}, and "
        "the loss turns NaN once the spread passes ~104 (a class's probability underflows to "
        "0 and 0 · log 0 = NaN; Inf when that class is the label) or a logit passes ~88 (exp "
        "overflows, Inf / Inf = NaN), which valid inputs reach: "
        f"signed-gradient ascent inside the bounds finds a spread of {reachable:.0f}. The model "
        "is trained this little on purpose: trained 10,000 steps (test logits in [-66, 37]), or "
        "3,000 steps with lr 1e-2, one mutation of a seed already gave a NaN and random search "
        "found it within 1,700 executions in each of 3 runs (measured while designing this "
        "benchmark).",
        "",
        "Each search runs `nnfuzz.fuzz(..., objectives=[\"loss\"])` until the first non-finite "
        f"loss, NaN or Inf (signature `loss:loss`), with a budget of {budget:,} executions (or {max_time:.0f} s), "
        f"run seeds 0..{runs - 1}, batch size 100; random search is the same call with "
        "`feedback=False` (the same mutation operators, always applied to a seed, no corpus "
        "growth). The nnfuzz rows differ in `objective_guidance`: True keeps inputs that set a "
        "new high of the per-example loss, False does not; (default) marks nnfuzz's default "
        "for the loss objective. A search that finds nothing counts as the budget. Seconds are "
        "wall-clock from the `fuzz()` call, set-up included. The loss objective also checks the "
        "gradients; the last column is the first failure of any of its checks (a NaN input "
        "gradient can come before the NaN loss: the gradient of log p is 1/p, Inf once p is "
        "subnormal).",
        "",
        "| searcher | found a NaN/Inf loss | execs to the first NaN/Inf loss, median (min–max) | "
        "seconds, median (min–max) | execs to the first failure of any loss check, median |",
        "|---|---|---|---|---|",
    ]
    for searcher, results in rows.items():
        found = [r for r in results if r.execs is not None]
        lines.append(f"| {searcher} | {len(found)}/{len(results)} | "
                     f"{spread([r.cost(budget) for r in results])} | "
                     f"{spread([r.seconds for r in results], '{:.2f}')} | "
                     f"{statistics.median(r.first_cost(budget) for r in results):,.0f} |")
    examples = [r for r in rows[next(n for n in rows if "(default)" in n)] if r.execs is not None]
    if examples:
        lines += ["", f"nnfuzz's findings (default row) were {', '.join(str(r.mutations) for r in examples)} "
                      f"mutations from their seeds (L∞ distance "
                      f"{', '.join(f'{r.distance:.3g}' for r in examples)}); detail: "
                      f"`{examples[0].detail}`."]
    text = "\n".join(lines) + "\n"
    print(text)
    write("nans", text, quick)
