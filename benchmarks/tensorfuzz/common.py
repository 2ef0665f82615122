"""What the TensorFuzz experiments share: digits, the unstable loss, cached training, searching and reporting."""

from __future__ import annotations

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

RESULTS = Path(__file__).resolve().parent.parent / "results"
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
    from benchmarks import report

    return report.write(f"tensorfuzz-{name}", text, quick)


def command(name: str, quick: bool) -> str:
    return f"{PYTHON} {name}{' --quick' if quick else ''}"


@functools.cache
def provenance() -> str:
    """What produced the numbers: nnfuzz's version and commit (read once, when the
    experiment starts), torch, Python, and the machine's load then."""
    import platform

    from benchmarks import machine

    return (f"nnfuzz {nnfuzz.__version__} at {machine.commit()}, torch {torch.__version__}, "
            f"Python {platform.python_version()}, {torch.get_num_threads()} torch thread(s); "
            f"load average {machine.load_average()} at the start")


def guides_by_default(objective: str) -> bool:
    """Whether nnfuzz's defaults use this objective's guidance (its default has changed
    between commits, so every searcher here sets ``objective_guidance`` explicitly)."""
    from nnfuzz.objectives import Disagree, LossObjective

    setting = nnfuzz.FuzzConfig().objective_guidance
    if setting is not None:
        return bool(setting)
    kind = {"loss": LossObjective, "disagree": Disagree}[objective]
    return bool(getattr(kind, "guides_by_default", False))
