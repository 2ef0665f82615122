"""The training-bug zoo (benchmarks/training_zoo): every target trains cleanly, and its bug is
within reach.

Each target is held to the two promises a benchmark of ``nnfuzz train`` needs:

* clean: 64 steps of plain training (its ``optimizer()``, else Adam at lr 1e-3; batches of 16
  drawn by ``torch.randperm``, 10 shuffle seeds) break none of the four definitions below, so
  that a failure the fuzzer reports is the bug, not the training loop;
* reachable: a witness trajectory inside ``BOUNDS`` and ``HYPERPARAMETERS``, at most 64 steps,
  breaks the definition the target names in ``BREAKS`` first, so that the bug can be found.

The definitions (those nnfuzz's training objectives check), judged after each step:

* nonfinite: the mean loss, a parameter's gradient, a parameter or the optimizer's state is
  NaN or Inf;
* exploding: the global gradient norm is above 1e5;
* dead: an ``nn.ReLU``/``nn.ReLU6`` module has at least 90% of its units <= 0 on every example
  of the probe batch (the first 64 training examples, unmoved, eval mode, no grad);
* diverge: the mean loss on the probe batch is above 10x its value at the starting weights
  (a NaN probe loss counts).

The loop is written out here (not nnfuzz's engine) so that the zoo's promises do not depend on
the code it benchmarks.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest
import torch
from torch import nn

from nnfuzz.target import load_target

ZOO = Path(__file__).resolve().parents[2] / "benchmarks" / "training_zoo"
STEPS, BATCH, PROBE, SHUFFLES = 64, 16, 64, range(10)
EXPLODING, DEAD_SHARE, DIVERGE = 1e5, 0.9, 10.0
DEFINITIONS = ("nonfinite", "exploding", "dead", "diverge")

#: A witness's change to a step of plain training: ``(step, model, loss, inputs, labels,
#: bounds) -> inputs``.
Move = Callable[[int, nn.Module, Callable, torch.Tensor, torch.Tensor, tuple], torch.Tensor]


def load(name: str) -> ModuleType:
    """The zoo file ``name`` as a module (importlib: the test also reads BREAKS and
    HYPERPARAMETERS, which nnfuzz's Target does not carry)."""
    path = ZOO / name
    spec = importlib.util.spec_from_file_location(f"training_zoo_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zoo_targets() -> tuple[str, ...]:
    return load("__init__.py").TARGETS


def grist(toward: str = "loss", moves: int = 1, after: int = 0) -> Move:
    """GRIST's move at its largest: each batch after step ``after`` moved ``moves`` times by
    half the bounds' width along the sign of the gradient of the mean loss (``toward="loss"``)
    or of the outputs' magnitude (``"output"``), clamped to BOUNDS after each move."""

    def move(step, model, loss, inputs, labels, bounds):
        low, high = bounds
        if step <= after:
            return inputs
        for _ in range(moves):
            leaf = inputs.detach().clone().requires_grad_(True)
            output = model(leaf)
            value = loss(output, labels).mean() if toward == "loss" else output.abs().sum()
            (gradient,) = torch.autograd.grad(value, leaf)
            inputs = (leaf + 0.5 * (high - low) * gradient.sign()).clamp(low, high).detach()
        return inputs

    return move


def dead_share(model: nn.Module, probe: torch.Tensor) -> float:
    """The largest share, over the model's ReLU modules, of units <= 0 on every probe example."""
    shares: list[float] = []

    def hook(module, args, output):
        units = (output.reshape(output.shape[0], -1) <= 0).all(dim=0)
        shares.append(float(units.float().mean()))

    relus = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return max(shares, default=0.0)


def _finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def _optimizer(module: ModuleType, parameters: list) -> torch.optim.Optimizer:
    """The target's optimizer(), else Adam at lr 1e-3 (nnfuzz train's default)."""
    make = getattr(module, "optimizer", None)
    return make(parameters) if make else torch.optim.Adam(parameters, lr=1e-3)


def train(module: ModuleType, shuffle: int, move: Move | None = None, lr: float | None = None,
          pick: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
          steps: int = STEPS) -> tuple[str, int] | None:
    """Plain training of ``module``'s target for ``steps`` steps on batches of ``BATCH`` drawn
    by ``torch.randperm`` with shuffle seed ``shuffle``; the first definition broken and its
    step (from 1), or None. A witness changes it: ``move`` moves each batch's inputs, ``lr``
    replaces the optimizer's learning rate, ``pick(step, x)`` says which examples may form
    the step's batch (a mask over the training set; None: all)."""
    model = module.model()
    x, y, loss = module.seeds(), module.targets(), module.loss
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(module, parameters)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    probe_x, probe_y = x[:PROBE], y[:PROBE]

    def probe() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            value = float(loss(model(probe_x), probe_y).mean())
            share = dead_share(model, probe_x)
        model.train()
        return value, share

    start, _ = probe()
    generator = torch.Generator().manual_seed(shuffle)
    for step in range(1, steps + 1):
        allowed = torch.arange(len(x)) if pick is None else pick(step, x).nonzero()[:, 0]
        indices = allowed[torch.randperm(len(allowed), generator=generator)[:BATCH]]
        inputs, labels = x[indices], y[indices]
        if move is not None:
            inputs = move(step, model, loss, inputs, labels, module.BOUNDS)
        optimizer.zero_grad(set_to_none=True)
        value = loss(model(inputs), labels).mean()
        if not _finite(value):
            return "nonfinite", step
        value.backward()
        grads = [p.grad for p in parameters if p.grad is not None]
        if not all(_finite(g) for g in grads):
            return "nonfinite", step
        if math.sqrt(sum(float(g.double().square().sum()) for g in grads)) > EXPLODING:
            return "exploding", step
        optimizer.step()
        state = [v for s in optimizer.state.values() for v in s.values()
                 if isinstance(v, torch.Tensor) and v.is_floating_point()]
        if not all(_finite(t) for t in parameters + state):
            return "nonfinite", step
        value, share = probe()
        if share >= DEAD_SHARE:
            return "dead", step
        if not value <= DIVERGE * start:  # a NaN probe loss has diverged too
            return "diverge", step
    return None


def top_lr(module: ModuleType) -> dict:
    """The witness that trains at the top of the declared lr range."""
    return {"lr": module.HYPERPARAMETERS["lr"][1]}


def at_bound_after(feature: int, after: int) -> Callable[[ModuleType], dict]:
    """The witness that, after ``after`` plain steps, forms each batch only of examples whose
    input ``feature`` sits at the low bound (a choice of examples: nothing is moved)."""

    def witness(module):
        low = module.BOUNDS[0]
        return {"pick": lambda step, x: (x[:, feature] == low) | (step <= after)}

    return witness


def moved(toward: str, moves: int, after: int) -> Callable[[ModuleType], dict]:
    return lambda module: {"move": grist(toward, moves, after)}


#: Each target's witness: what is changed in plain training (shuffle 0) to reach its bug.
WITNESSES = {
    "xent_handwritten.py": moved("loss", 2, after=40),
    "vae_kl.py": moved("loss", 2, after=20),
    "std_norm.py": at_bound_after(0, after=20),
    "sigmoid_bce.py": moved("output", 1, after=40),
    "lr_diverges.py": top_lr,
    "dead_relu.py": top_lr,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second thread only costs (and oversubscribes a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_zoo_lists_its_files_and_each_names_its_bug():
    files = sorted(p.name for p in ZOO.glob("*.py") if p.name != "__init__.py")
    assert sorted(_zoo_targets()) == files
    assert sorted(WITNESSES) == files
    for name in files:
        module = load(name)
        assert module.BREAKS in DEFINITIONS, name
        assert len(module.__doc__) > 200, f"{name}: the docstring says the pattern and the fix"
        assert len((ZOO / name).read_text().splitlines()) <= 400


@pytest.mark.parametrize("name", _zoo_targets())
def test_target_keeps_the_contract(name):
    module = load(name)
    target = load_target(ZOO / name)
    first, second = module.model(), module.model()
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b), "model() is seeded: the same weights every call"
    assert sum(p.numel() for p in first.parameters()) < 5000
    (x,) = target.seeds
    assert x.is_floating_point() and 32 <= len(x) <= 256
    low, high = module.BOUNDS
    assert bool(((x >= low) & (x <= high)).all()), "the seeds lie inside BOUNDS"
    assert len(target.labels) == len(x)
    value = module.loss(first(x), module.targets())
    assert value.shape in {(len(x),), ()} and _finite(value)
    lr = _optimizer(module, list(first.parameters())).param_groups[0]["lr"]
    for key, (lowest, highest) in getattr(module, "HYPERPARAMETERS", {}).items():
        assert key == "lr" and lowest <= lr <= highest, "the default lies inside its range"


@pytest.mark.parametrize("name", _zoo_targets())
def test_target_trains_cleanly(name):
    module = load(name)
    broken = {shuffle: train(module, shuffle) for shuffle in SHUFFLES}
    assert broken == {shuffle: None for shuffle in SHUFFLES}


@pytest.mark.parametrize("name", _zoo_targets())
def test_targets_bug_is_within_reach(name):
    module = load(name)
    broken = train(module, 0, **WITNESSES[name](module))
    assert broken is not None and broken[0] == module.BREAKS, broken
