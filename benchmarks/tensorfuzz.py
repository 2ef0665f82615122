"""TensorFuzz's experiments (Odena et al. 2019, arXiv 1807.10875) rebuilt for nnfuzz: issue #3.

    python -m benchmarks.tensorfuzz nans [--quick]
    python -m benchmarks.tensorfuzz quantization [--quick]
    python -m benchmarks.tensorfuzz bar [--quick]

``nans``: a digits MLP trained with a hand-written, numerically unstable
cross-entropy; nnfuzz (``objectives=["loss"]``) against random search with
the same mutation operators (``feedback=False``), executions and seconds to
the first NaN (or Inf) loss over several run seeds.

``quantization``: a float32 digits MLP against its int8 (and fp16) copy; for
each of 100 single seed images, is there a disagreement within L-inf radius
0.4 of it (inputs scaled to [-1, 1], as in TensorFuzz), and after how many
executions: nnfuzz, nnfuzz without objective guidance, random search.

``bar``: TensorFuzz's own nans experiment (784-200-100-10 ReLU MLP, 35,000
SGD steps, unstable softmax and cross-entropy) on digits upsampled to 28x28;
executions and seconds to the first NaN (or Inf) loss per seed image, against
TensorFuzz's measured median of 146,000 executions and 30.6 s.

Each writes ``benchmarks/results/tensorfuzz-<name>.md`` (``-quick.md`` with
``--quick``). Trained weights are cached as safetensors in
``benchmarks/results/weights/`` and retrained when missing; nothing is
downloaded (the data is scikit-learn's ``load_digits``). Runs use one torch
thread by default (``--threads``): these models are tiny, and a second thread
slowed training twenty-fold on the shared two-core machine.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

import nnfuzz
from nnfuzz.status import Reporter

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHTS = RESULTS / "weights"
PYTHON = "python -m benchmarks.tensorfuzz"


# --- data ---------------------------------------------------------------------------

def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits: images (N, 64) float32 in [0, 16], labels (N,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (torch.tensor(data.data, dtype=torch.float32),
            torch.tensor(data.target, dtype=torch.long))


#: Images held out of training; seeds are drawn from them.
TEST_SIZE = 297


def split(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A fixed shuffle: (train images, train labels, test images, test labels)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = order[TEST_SIZE:], order[:TEST_SIZE]
    return images[train], labels[train], images[test], labels[test]


# --- the planted bug: TensorFuzz's unstable softmax and cross-entropy -----------------

def unstable_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``exp(z) / sum(exp(z))``: Inf/Inf = NaN once a logit passes ~88, 0 once one is below ~-104."""
    exps = logits.exp()
    return exps / exps.sum(-1, keepdim=True)


def unstable_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-sum(t * log(softmax(z)))`` per example, (N,); 0 * log(0) = NaN for a vanished class."""
    onehot = F.one_hot(labels.long(), logits.shape[-1]).to(logits.dtype)
    return -(onehot * unstable_softmax(logits).log()).sum(-1)


# --- training, cached as safetensors ---------------------------------------------------

def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int,
          batch: int, optimizer: Callable[..., torch.optim.Optimizer], unstable: bool,
          seed: int) -> dict[str, float]:
    """Minibatch training with a fixed generator; returns what happened.

    With ``unstable`` the loss is :func:`unstable_cross_entropy`; a step where it
    or its gradient is not finite falls back to the stable ``F.cross_entropy``
    (the same gradient wherever both are finite) and is counted.
    """
    generator = torch.Generator().manual_seed(seed)
    opt = optimizer(model.parameters())
    fallbacks = 0
    model.train()
    order, position = torch.randperm(len(images), generator=generator), 0
    for _ in range(steps):
        if position + batch > len(order):
            order, position = torch.randperm(len(images), generator=generator), 0
        rows = order[position:position + batch]
        position += batch
        opt.zero_grad()
        if unstable:
            loss = unstable_cross_entropy(model(images[rows]), labels[rows]).mean()
            if bool(torch.isfinite(loss)):
                loss.backward()
                if all(bool(torch.isfinite(p.grad).all()) for p in model.parameters()
                       if p.grad is not None):
                    opt.step()
                    continue
                opt.zero_grad()
            fallbacks += 1
        F.cross_entropy(model(images[rows]), labels[rows]).backward()
        opt.step()
    model.eval()
    return {"fallback_steps": fallbacks}


def cached(name: str, build: Callable[[], nn.Module], fit: Callable[[nn.Module], object],
           init_seed: int) -> tuple[nn.Module, bool]:
    """The model with weights from WEIGHTS/<name>.safetensors, trained and saved when missing.

    Returns the model (eval mode) and whether it was trained now.
    """
    from safetensors.torch import load_file, save_file

    path = WEIGHTS / f"{name}.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(init_seed)
        model = build()
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model.eval(), False
    fit(model)
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(temporary))
    temporary.replace(path)
    return model.eval(), True


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(-1) == labels).float().mean())


# --- searching -------------------------------------------------------------------------

class Clock(Reporter):
    """Notes when each failure is reported; stops the run at the signature ``stop_on``.

    nnfuzz has no option to stop at one particular signature (``stop_on_failure``
    stops at the first failure of any kind), so the reporter raises
    KeyboardInterrupt, which the loop handles as an interrupt: it stops and
    returns what it found.
    """

    def __init__(self, start: float, stop_on: str | None) -> None:
        self.start = start
        self.stop_on = stop_on
        self.first: tuple[float, nnfuzz.Failure] | None = None
        self.wanted: float | None = None
        self.stopped = False
        #: Seconds from the call until the loop starts (the run's first info line).
        self.setup: float | None = None

    def info(self, message: str) -> None:
        if self.setup is None:
            self.setup = time.perf_counter() - self.start

    def failure(self, failure: nnfuzz.Failure, replay_command: str | None) -> None:
        now = time.perf_counter() - self.start
        if self.first is None:
            self.first = (now, failure)
        if self.stop_on is not None and failure.signature == self.stop_on:
            self.wanted, self.stopped = now, True
            raise KeyboardInterrupt


@dataclass
class Search:
    """One search: executions and seconds to the failure sought (None: not found)."""

    execs: int | None
    seconds: float
    total_s: float
    signature: str = ""
    detail: str = ""
    mutations: int = 0
    distance: float = 0.0
    #: Executions to the first failure of any signature, and its signature.
    first_execs: int | None = None
    first_signature: str = ""
    #: Executions the whole run did.
    total_execs: int = 0
    #: Seconds before the fuzz loop started (threshold, seed check, coverage priming).
    setup_s: float = 0.0

    def cost(self, budget: int) -> int:
        return self.execs if self.execs is not None else budget

    def first_cost(self, budget: int) -> int:
        return self.first_execs if self.first_execs is not None else budget

    def __str__(self) -> str:
        if self.execs is None:
            return f"not found in {self.total_execs:,} execs ({self.total_s:.2f} s)"
        first = ("" if self.first_signature == self.signature else
                 f"; first {self.first_signature} after {self.first_execs:,}")
        return (f"{self.signature} after {self.execs:,} execs, {self.seconds:.2f} s, "
                f"{self.mutations} mutations, distance {self.distance:.3g}{first}")


def search(model: nn.Module, seeds: torch.Tensor, *, budget: int, max_time: float,
           stop_on: str | None = None, **options: object) -> Search:
    """``nnfuzz.fuzz`` until the first failure (with ``stop_on``: the first of that
    signature); seconds are wall-clock from the call, set-up included."""
    start = time.perf_counter()
    clock = Clock(start, stop_on)
    result = nnfuzz.fuzz(model, seeds, runs=budget, max_time=max_time,
                         stop_on_failure=stop_on is None, reporter=clock, **options)
    total = time.perf_counter() - start
    if result.interrupted and not clock.stopped:
        raise KeyboardInterrupt
    wanted = [f for f in result.failures if stop_on is None or f.signature == stop_on]
    first = clock.first[1] if clock.first else None
    found = Search(None, total, total, total_execs=result.execs, setup_s=clock.setup or 0.0,
                   first_execs=int(first.metadata["found_after_execs"]) if first else None,
                   first_signature=first.signature if first else "")
    if not wanted:
        return found
    failure = wanted[0]
    found.execs = int(failure.metadata["found_after_execs"])
    found.seconds = clock.wanted if stop_on is not None else clock.first[0]  # type: ignore[index]
    found.signature, found.detail = failure.signature, failure.detail
    found.mutations = int(failure.metadata["mutations"])
    found.distance = float(failure.metadata["distance"])
    return found


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """Median (min–max)."""
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}–{fmt.format(max(values))})")


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split this uneven if both were equally good."""
    from math import comb

    total = wins + losses
    if total == 0:
        return 1.0
    tail = sum(comb(total, k) for k in range(min(wins, losses) + 1)) / 2 ** total
    return min(1.0, 2 * tail)


def write(name: str, text: str, quick: bool) -> Path:
    """results/tensorfuzz-<name>.md, or tensorfuzz-<name>-quick.md for a --quick run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"tensorfuzz-{name}{'-quick' if quick else ''}.md"
    path.write_text(text)
    print(f"wrote {path}", flush=True)
    return path


def command(name: str, quick: bool) -> str:
    return f"{PYTHON} {name}{' --quick' if quick else ''}"


@functools.cache
def provenance() -> str:
    """What produced the numbers: nnfuzz's version and commit (read once, when the
    experiment starts), its objective_guidance default, torch, Python."""
    import platform
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nnfuzz"], cwd=root,
                               text=True, capture_output=True, check=True).stdout.strip()
        where = f" at commit {commit}" + (" with uncommitted changes in nnfuzz/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        where = ""
    return (f"nnfuzz {nnfuzz.__version__}{where}, torch {torch.__version__}, "
            f"Python {platform.python_version()}, {torch.get_num_threads()} torch thread(s)")


def guides_by_default(objective: str) -> bool:
    """Whether nnfuzz's defaults use this objective's guidance (its default has changed
    between commits, so every searcher here sets ``objective_guidance`` explicitly)."""
    from nnfuzz.differential import Disagree
    from nnfuzz.gradients import LossObjective

    setting = nnfuzz.FuzzConfig().objective_guidance
    if setting is not None:
        return bool(setting)
    kind = {"loss": LossObjective, "disagree": Disagree}[objective]
    return bool(getattr(kind, "guides_by_default", False))


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


# --- (b) quantization: float32 against int8 and fp16 copies ---------------------------

#: Adam steps (lr 1e-3, batch 100, the stable cross-entropy) for the quantization model.
QUANT_STEPS = 3000
RADIUS = 0.4


def quantization_model() -> tuple[nn.Module, bool]:
    images, labels, _, _ = split(*digits())

    def fit(model: nn.Module) -> None:
        train(model, images / 8 - 1, labels, steps=QUANT_STEPS, batch=100, unstable=False,
              optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), seed=2)

    return cached(f"quantization-digits-64-64-10-adam-{QUANT_STEPS}",
                  lambda: DigitsMLP(hidden=64, scale=1.0), fit, init_seed=2)


def quant_searchers() -> dict[str, dict[str, bool]]:
    """Explicit options (the default of objective_guidance has changed between commits)."""
    default = guides_by_default("disagree")
    searchers = {
        f"nnfuzz, `objective_guidance={guidance}`{' (default)' if guidance == default else ''}":
            {"objective_guidance": guidance} for guidance in (True, False)}
    searchers["random search (`feedback=False`)"] = {"feedback": False}
    return searchers


def quantization(quick: bool) -> None:
    started = time.perf_counter()
    count, budget, max_time = (10, 5_000, 30.0) if quick else (100, 5_000, 30.0)
    model, trained = quantization_model()
    _, _, test_images, test_labels = split(*digits())
    test_images = test_images / 8 - 1  # [0, 16] -> [-1, 1], as TensorFuzz's inputs
    seeds = test_images[:count]
    from nnfuzz.differential import build_reference

    searchers = quant_searchers()
    sections = []
    for kind in ("int8", "fp16"):
        reference = build_reference(model, kind)
        with torch.no_grad():
            ref_accuracy = float(torch.cat([reference.run((test_images[i:i + 1],)).argmax(-1)
                                            for i in range(len(test_images))]).eq(test_labels)
                                 .float().mean())
        found: dict[str, list[Search | None]] = {name: [] for name in searchers}
        seconds = dict.fromkeys(searchers, 0.0)
        skipped: list[int] = []
        for index in range(count):
            row: dict[str, Search] = {}
            for name, extra in searchers.items():
                clock = time.perf_counter()
                try:
                    row[name] = search(
                        model, seeds[index:index + 1], budget=budget, max_time=max_time,
                        seed=index, reference=kind, objectives=["disagree"], bounds=(-1.0, 1.0),
                        radius=RADIUS, norm="linf", **extra)
                except nnfuzz.TargetError as error:
                    # The seed already disagrees: nnfuzz refuses failing seeds.
                    if row or "already fails" not in str(error):
                        raise
                    break
                seconds[name] += time.perf_counter() - clock
            if not row:
                skipped.append(index)
            for name in searchers:
                found[name].append(row.get(name))
            print(f"quantization {kind} seed {index}: " + (
                "; ".join(f"{name}: {result.execs if result.execs is not None else 'not found'}"
                          for name, result in row.items()) or "skipped (already disagrees)"),
                  flush=True)
        usable = count - len(skipped)
        ran = {name: [r for r in results if r is not None] for name, results in found.items()}
        hit = {name: [r for r in results if r.execs is not None] for name, results in ran.items()}
        hit_sets = {name: {i for i, r in enumerate(results) if r is not None and r.execs is not None}
                    for name, results in found.items()}
        names = list(searchers)

        def only(name: str) -> int:
            return len(hit_sets[name] - set().union(*(hit_sets[o] for o in names if o != name)))

        lines = [
            f"### float32 against {kind}",
            "",
            f"{kind} copy: test accuracy {ref_accuracy:.3f} (each image run alone); "
            f"{len(skipped)} of {count} seeds already disagree and are skipped "
            f"({', '.join(map(str, skipped)) or 'none'}); {usable} seeds fuzzed.",
            "",
            "| | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
            "| seeds with a disagreement found | "
            + " | ".join(f"{len(hit[n])}/{len(ran[n])}" for n in names) + " |",
            "| execs to it, median over found seeds (min–max) | "
            + " | ".join(spread([r.execs for r in hit[n]]) if hit[n] else "—" for n in names)
            + " |",
            "| execs, median over all seeds (not found = budget) | "
            + " | ".join(f"{statistics.median(r.cost(budget) for r in ran[n]):,.0f}"
                         if ran[n] else "—" for n in names) + " |",
            "| seeds found by this searcher alone | " + " | ".join(str(only(n)) for n in names)
            + " |",
            "| wall-clock seconds, all seeds | " + " | ".join(f"{seconds[n]:.1f}" for n in names)
            + " |",
        ]
        guided, unguided = names[0], names[1]
        both = [i for i in range(count) if i not in skipped]
        wins = sum(1 for i in both if i in hit_sets[guided] and i not in hit_sets[unguided])
        losses = sum(1 for i in both if i in hit_sets[unguided] and i not in hit_sets[guided])
        lines += ["", f"Does the guidance help? On the {len(both)} seeds both ran, the guided run "
                      f"found a disagreement the unguided one missed on {wins}, and missed one it "
                      f"found on {losses} (two-sided sign test p = {sign_test(wins, losses):.2f})."]
        sections.append("\n".join(lines))
        print(sections[-1], flush=True)
    elapsed = time.perf_counter() - started
    header = [
        "## TensorFuzz (b): disagreements between a float32 model and its int8 / fp16 copy",
        "",
        f"`{command('quantization', quick)}` — {elapsed:.0f} s wall-clock "
        f"({'trained the model first' if trained else 'weights from the cache'}); "
        f"{provenance()}.",
        "",
        "A 64-64-10 ReLU MLP trained normally (stable cross-entropy, "
        f"{QUANT_STEPS:,} Adam steps, lr 1e-3, batch 100) on scikit-learn digits scaled to "
        "[-1, 1] in the data, as TensorFuzz's inputs were (float32 test accuracy "
        f"{accuracy(model, test_images, test_labels):.3f}), against the copy nnfuzz builds for "
        "`reference=\"int8\"` (dynamic int8 quantization of the Linear layers) and, in the "
        f"second table, `reference=\"fp16\"`. Each of the first {count} held-out test images is "
        "fuzzed alone (a single-example seed tensor, run seed = its index) with "
        f"`objectives=[\"disagree\"]`, `radius={RADIUS}`, `norm=\"linf\"`, `BOUNDS = (-1, 1)` "
        f"(TensorFuzz's L∞ ball of 0.4 on [-1, 1] inputs), `stop_on_failure=True` and "
        f"{budget:,} executions per seed (or {max_time:.0f} s): nnfuzz with "
        "`objective_guidance=True` (the disagree objective's guidance: inputs that set a new low "
        "of the top-two margin or a new high of the gap to the reference are kept, and half the "
        "guided mutations step down the gradient of the top-two margin); nnfuzz "
        "with `objective_guidance=False` (without it); and random search "
        "(`feedback=False`: the same operators, always applied to the seed, projected into "
        "the same ball). A disagreement counts only when it holds with the example run alone "
        "(nnfuzz re-checks it so: dynamic quantization depends on the batch). A seed on which "
        "the model already disagrees with its copy is refused by nnfuzz (`TargetError`: seeds "
        "must pass) and counted apart. (default) marks nnfuzz's default for the disagree "
        "objective.",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n\n".join(sections) + "\n"
    print(text)
    write("quantization", text, quick)


# --- (c) bar: TensorFuzz's nans experiment, rebuilt -------------------------------------

class TensorFuzzMLP(nn.Module):
    """TensorFuzz's examples/nans classifier: 784-200-100-10 ReLU, kernels uniform in
    [-init_scale, init_scale], biases zero (tf.layers.dense's default)."""

    def __init__(self, init_scale: float = 0.25) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 200)
        self.fc2 = nn.Linear(200, 100)
        self.logits = nn.Linear(100, 10)
        self.relu = nn.ReLU()
        for layer in (self.fc1, self.fc2, self.logits):
            nn.init.uniform_(layer.weight, -init_scale, init_scale)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.relu(self.fc2(self.relu(self.fc1(x.flatten(1))))))


#: TensorFuzz's published numbers for this experiment (median over 6 runs).
TENSORFUZZ_EXECS = 146_000
TENSORFUZZ_SECONDS = 30.6
BAR_STEPS = 35_000
BAR_QUICK_STEPS = 3_000


def digits_28() -> tuple[torch.Tensor, torch.Tensor]:
    """Digits upsampled 8x8 -> 28x28 (scipy.ndimage.zoom, order 1), scaled to [-1, 1]."""
    import numpy as np
    from scipy import ndimage

    images, labels = digits()
    big = np.stack([ndimage.zoom(image.reshape(8, 8).numpy(), 3.5, order=1) for image in images])
    return (torch.tensor(big, dtype=torch.float32) / 8 - 1).clamp(-1, 1), labels


def bar_model(steps: int) -> tuple[nn.Module, bool, dict[str, float]]:
    images, labels, _, _ = split(*digits_28())
    info: dict[str, float] = {}

    def fit(model: nn.Module) -> None:
        info.update(train(model, images, labels, steps=steps, batch=100, unstable=True,
                          optimizer=lambda p: torch.optim.SGD(p, lr=0.01), seed=3))

    model, trained = cached(f"bar-tensorfuzz-784-200-100-10-sgd-{steps}", TensorFuzzMLP, fit,
                            init_seed=3)
    return model, trained, info


def beats_tensorfuzz(execs: float, seconds: float) -> bool:
    return TENSORFUZZ_EXECS / execs >= 10 and TENSORFUZZ_SECONDS / seconds >= 10


def bar_table(results: list[tuple[int, list[Search]]], labels: torch.Tensor) -> tuple[list[str], list[int]]:
    """The per-image table of one configuration, and the images that miss the bar."""

    def cell(values: list[float], fmt: str, lower: bool) -> str:
        text = fmt.format(statistics.median(values))
        if len(values) > 1:
            text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
        return (">" if lower else "") + text

    def winners(row: list[Search]) -> int:
        return sum(1 for r in row if r.execs is not None and beats_tensorfuzz(r.execs, r.seconds))

    lines = [
        "| test image (label) | NaN/Inf loss found | execs, median (min–max) | seconds, median "
        "(min–max) | execs ratio (146,000 / median) | seconds ratio (30.6 / median) | "
        "beats TensorFuzz 10× in both? | runs that do |",
        "|---|---|---|---|---|---|---|---|",
    ]
    failed = []
    for index, row in results:
        missed = any(r.execs is None for r in row)
        execs = [float(r.cost(r.total_execs)) for r in row]
        seconds = [r.seconds for r in row]
        median_execs, median_seconds = statistics.median(execs), statistics.median(seconds)
        verdict = not missed and beats_tensorfuzz(median_execs, median_seconds)
        if not verdict:
            failed.append(index)
        lines.append(
            f"| {index} ({int(labels[index])}) | {sum(r.execs is not None for r in row)}/{len(row)} | "
            f"{cell(execs, '{:,.0f}', missed)} | {cell(seconds, '{:.2f}', missed)} | "
            f"{TENSORFUZZ_EXECS / median_execs:.1f}× | {TENSORFUZZ_SECONDS / median_seconds:.1f}× | "
            f"{'yes' if verdict else '**no**'} | {winners(row)}/{len(row)} |")
    every = [r for _, row in results for r in row]
    lines.append(
        f"| all runs | {sum(r.execs is not None for r in every)}/{len(every)} | "
        f"{spread([float(r.cost(r.total_execs)) for r in every])} | "
        f"{spread([r.seconds for r in every], '{:.2f}')} | "
        f"{TENSORFUZZ_EXECS / statistics.median(r.cost(r.total_execs) for r in every):.1f}× | "
        f"{TENSORFUZZ_SECONDS / statistics.median(r.seconds for r in every):.1f}× | | "
        f"{winners(every)}/{len(every)} |")
    return lines, failed


def bar(quick: bool) -> None:
    started = time.perf_counter()
    steps = BAR_QUICK_STEPS if quick else BAR_STEPS
    #: Seed images, run seeds per image, executions and seconds per run.
    count, runs, budget, max_time = (5, 1, 100_000, 5.0) if quick else (6, 3, 200_000, 60.0)
    model, trained, info = bar_model(steps)
    trained_s = time.perf_counter() - started
    _, _, test_images, test_labels = split(*digits_28())
    with torch.no_grad():
        test_logits = model(test_images)
        test_loss = unstable_cross_entropy(test_logits, test_labels)
    passing = torch.isfinite(test_loss).nonzero().flatten()[:count].tolist()
    reachable = largest_spread(model, -1.0, 1.0, (28, 28))
    options = dict(bounds=(-1.0, 1.0), loss=unstable_cross_entropy, objectives=["loss"],
                   batch_size=100, budget=budget, max_time=max_time, stop_on="loss:loss")
    default = guides_by_default("loss")
    configs = {guidance: {"objective_guidance": guidance} for guidance in (default, not default)}
    results: dict[bool, list[tuple[int, list[Search]]]] = {}
    for guidance, extra in configs.items():
        results[guidance] = []
        for index in passing:
            image = (test_images[index:index + 1], test_labels[index:index + 1])
            row = []
            for seed in range(runs):
                row.append(search(model, image[0], targets=image[1], seed=seed, **extra, **options))
                print(f"bar | objective_guidance={guidance} | test image {index} | run seed {seed} "
                      f"| {row[-1]}", flush=True)
            results[guidance].append((index, row))
    random_index = passing[0]
    random = search(model, test_images[random_index:random_index + 1],
                    targets=test_labels[random_index:random_index + 1], feedback=False, seed=0,
                    **options)
    print(f"bar | random search, test image {random_index} | {random}", flush=True)
    elapsed = time.perf_counter() - started
    every = [r for rows in results.values() for _, row in rows for r in row]

    lines = [
        "## TensorFuzz (c): the bar — TensorFuzz's nans experiment in PyTorch",
        "",
        f"`{command('bar', quick)}` — {elapsed:.0f} s wall-clock, of which "
        f"{trained_s:.0f} s {'training' if trained else 'loading the cached weights'}; "
        f"{provenance()}, CPU.",
        "",
        "TensorFuzz's `examples/nans` rebuilt: a 784-200-100-10 ReLU MLP (kernels uniform in "
        f"[-0.25, 0.25], biases 0), trained {steps:,} steps of plain SGD (lr 0.01, batch 100, "
        "TensorFuzz's optimizer) on the mean of the unstable cross-entropy "
        "`-sum(t * log(exp(z) / exp(z).sum()))`"
        + (f" (only {steps:,} steps, not 35,000: `--quick`)" if quick else "")
        + f", on the {1797 - TEST_SIZE:,} training images of scikit-learn digits upsampled to "
        "28×28 (`scipy.ndimage.zoom`, order 1) and scaled to [-1, 1]; a step whose unstable "
        "loss or its gradient is not finite falls back to the stable loss "
        + (f"({int(info['fallback_steps'])} steps did)" if trained else
           "(training was cached; none did when it ran)")
        + f". Test accuracy {accuracy(model, test_images, test_labels):.3f}; the unstable loss is "
        f"finite on {int(torch.isfinite(test_loss).sum())} of {len(test_images)} test images "
        f"(logits in [{float(test_logits.min()):.1f}, {float(test_logits.max()):.1f}], logit "
        f"spread at most {float(logit_spread(test_logits).max()):.1f}); signed-gradient ascent "
        f"inside the bounds reaches a spread of {reachable:.0f}, past the ~104 where the loss is NaN or Inf. "
        f"Each of the first {len(passing)} test images with a finite loss is fuzzed alone "
        "(a single-example seed, its label as `targets`), `objectives=[\"loss\"]`, "
        "`batch_size=100`, `BOUNDS = (-1, 1)`, no radius (TensorFuzz's nans fuzzer had none), "
        f"run seed{'s 0..' + str(runs - 1) if runs > 1 else ' 0'}, until the first NaN or Inf "
        f"loss (signature `loss:loss`; at most {budget:,} executions or {max_time:.0f} s per run), "
        f"once with nnfuzz's default for the loss objective (`objective_guidance={default}`: "
        f"{'inputs that set a new high of the per-example loss are kept' if default else 'no loss guidance'}) "
        f"and once with `objective_guidance={not default}`. "
        "Seconds are wall-clock from the `fuzz()` call, set-up included (median "
        f"{statistics.median(r.setup_s for r in every):.2f} s: threshold, seed check, coverage "
        "priming). TensorFuzz's numbers, from its paper: median 146,000 executions and 30.6 s "
        "over 6 runs (found in 5 of 6); random search with its mutation found nothing in 5 runs "
        "of 600,000. The bar: at least 10× fewer executions and 10× fewer seconds than "
        "TensorFuzz's medians (≤ 14,600 executions and ≤ 3.06 s) for every seed image"
        + (f"; per image, the median of {runs} runs is compared, as TensorFuzz's numbers are "
           f"medians of runs, and the last column counts the single runs that beat it too."
           if runs > 1 else "."),
        "(A run that found nothing counts as the executions and seconds it ran, marked >.)",
    ]
    verdicts = {}
    for guidance in configs:
        table, failed = bar_table(results[guidance], test_labels)
        verdicts[guidance] = failed
        title = "nnfuzz's default" if guidance == default else "the other setting"
        lines += ["", f"### `objective_guidance={guidance}` ({title})", "", *table, "",
                  f"With `objective_guidance={guidance}`, nnfuzz beats TensorFuzz by 10× in both "
                  f"executions and seconds on {len(passing) - len(failed)} of {len(passing)} seed "
                  "images" + ("." if not failed else
                              f"; not on test image{'s' if len(failed) > 1 else ''} "
                              f"{', '.join(map(str, failed))}.")]
    failed = verdicts[default]
    lines += [
        "",
        f"Random search (`feedback=False`, same options, run seed 0) on test image "
        f"{random_index}: "
        + (f"found a NaN/Inf loss after {random.execs:,} executions, {random.seconds:.2f} s."
           if random.execs is not None else
           f"no NaN/Inf loss in {random.total_execs:,} executions ({random.total_s:.1f} s)."),
        "",
        f"**Verdict (nnfuzz's defaults): "
        + ("nnfuzz beats TensorFuzz by at least 10× in both executions and seconds on every "
           f"seed image tried ({len(passing)} of {len(passing)})." if not failed else
           f"the bar is not met: nnfuzz beats TensorFuzz by 10× in both on "
           f"{len(passing) - len(failed)} of {len(passing)} seed images, not on "
           f"{', '.join(map(str, failed))}.")
        + "**" + (" (`--quick` trains only 3,000 steps and runs each image once for at most "
                  f"{max_time:.0f} s: not the bar's model or budget.)" if quick else ""),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write("bar", text, quick)


EXPERIMENTS = {"nans": nans, "quantization": quantization, "bar": bar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=tuple(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true", help="a smaller run of about a minute")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these models are tiny, and extra "
                             "threads slow them down on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    provenance()  # the commit the experiment starts from
    EXPERIMENTS[args.experiment](args.quick)


if __name__ == "__main__":
    main()
