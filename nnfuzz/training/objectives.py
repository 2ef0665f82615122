"""The training objectives: what makes a training step a failure (the README's *Training
objectives*), each naming the step where it first fired.

- ``nonfinite``: the loss, a gradient, a parameter or the optimizer's state of one NaN/Inf;
- ``exploding``: the global gradient norm past ``--exploding-norm``;
- ``dead``: a ReLU layer (nn.ReLU, nn.ReLU6) with ``--dead-share`` of its units never
  positive on the probe batch (the doctor's activations check, during training);
- ``diverge``: the probe batch's loss past ``--diverge-factor`` times its value at the
  starting weights;
- the target's ``train_objectives()``: callables given a :class:`StepView`, true where the
  step failed.

The probe batch is the first ``PROBE_SIZE`` training examples as they are: ``dead`` and
``diverge`` are statements about the weights, not about the (moved) batch they trained on.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nnfuzz.doctor.activations import RECTIFIERS
from nnfuzz.errors import TargetError, UsageError, first_line, user_traceback
from nnfuzz.reading import output_tensors
from nnfuzz.target import Target
from nnfuzz.training.setup import TrainConfig, TrainingSet, call_model, loss_of

BUILT_IN = ("nonfinite", "exploding", "dead", "diverge")
#: Examples in the probe batch, at most.
PROBE_SIZE = 64


@dataclass(frozen=True)
class Broken:
    """A training objective that fired: which, at which step (counted from 1), what it saw
    (``what``), and ``where`` it saw it (the loss, a parameter, a layer; "" when global),
    which with the objective makes the signature."""

    objective: str
    what: str
    step: int
    where: str = ""

    @property
    def signature(self) -> str:
        return f"train-{self.objective}" + (f":{self.where}" if self.where else "")

    @property
    def detail(self) -> str:
        return f"{self.what} at step {self.step}"


@dataclass(frozen=True)
class StepView:
    """What a ``train_objectives()`` callable is given after each step: read it, change
    nothing (the model and optimizer are the copies nnfuzz trains)."""

    step: int
    loss: float
    gradient_norm: float
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor


def user_objectives(target: Target) -> dict[str, Callable[[StepView], Any]]:
    return {getattr(f, "__name__", f"objective{i}"): f for i, f in enumerate(target.train_objectives)}


def selected(config: TrainConfig, target: Target) -> tuple[str, ...]:
    """The objectives a run checks: --objective's names, or every one; a UsageError naming
    the choices for an unknown name."""
    available = BUILT_IN + tuple(user_objectives(target))
    if not config.objectives:
        return available
    unknown = [name for name in config.objectives if name not in available]
    if unknown:
        raise UsageError(f"--objective {unknown[0]!r} is not a training objective: choose "
                         f"{', '.join(available)}.")
    return tuple(name for name in available if name in config.objectives)


class Judge:
    """The objectives of one run and what they compare with (the probe batch and its loss at
    the starting weights), measured once; shared by every TrainingState of the run."""

    def __init__(self, target: Target, data: TrainingSet, config: TrainConfig) -> None:
        self.target, self.config = target, config
        self.on = selected(config, target)
        self.user = {name: f for name, f in user_objectives(target).items() if name in self.on}
        size = min(PROBE_SIZE, data.size)
        self.probe = tuple(t[:size] for t in data.inputs), data.labels[:size], data.names
        self.probes = "dead" in self.on or "diverge" in self.on
        self.seen: tuple[float, tuple[float, ...]] = (math.nan, ())
        self.start_loss = self.probe_loss(copy.deepcopy(target.model))[0] \
            if "diverge" in self.on else math.nan

    def describe(self) -> str:
        said = {"nonfinite": "nonfinite",
                "exploding": f"exploding (gradient norm > {self.config.exploding_norm:g})",
                "dead": f"dead (>= {self.config.dead_share:.0%} of a ReLU layer inactive on the "
                        f"{self.probe[1].shape[0]}-example probe)",
                "diverge": f"diverge (probe loss > {self.config.diverge_factor:g}x its start "
                           f"{self.start_loss:.4g})"}
        return "training objectives: " + ", ".join(said.get(name, name) for name in self.on)

    def after_backward(self, gradient_norm: float) -> tuple[str, str, str] | None:
        if "exploding" in self.on and gradient_norm > self.config.exploding_norm:
            return ("exploding", f"gradient norm {gradient_norm:.3g} > "
                                 f"{self.config.exploding_norm:g}", "")
        return None

    def after_step(self, view: StepView, probe: bool = True) -> tuple[str, str, str] | None:
        """The probe's objectives (where ``probe``), then the target's, on the weights the
        step left."""
        if self.probes and probe:
            loss, dead = self.probe_loss(view.model)
            if "dead" in self.on and dead is not None:
                name, share = dead
                return "dead", f"{share:.0%} of ReLU layer '{name}' inactive on the probe", name
            if "diverge" in self.on and (not math.isfinite(loss) or
                                         loss > self.config.diverge_factor * self.start_loss):
                return ("diverge", f"probe loss {loss:.4g} > {self.config.diverge_factor:g}x its "
                                   f"start {self.start_loss:.4g}", "")
        for name, objective in self.user.items():
            if self._fired(name, objective, view):
                return name, f"objective {name} returned True", ""
        return None

    def probe_loss(self, model: torch.nn.Module) -> tuple[float, tuple[str, float] | None]:
        """The probe batch's mean loss at ``model``'s weights, and its most inactive ReLU layer
        when at least --dead-share of it is dead (else None). In eval mode, no gradient, on
        its own random stream: the training it judges goes on as if it had not looked."""
        inputs, labels, names = self.probe
        shares: dict[str, float] = {}
        def seen(name: str, output: Any) -> None:  # a hook that returns nothing
            shares.setdefault(name, _dead_share(output))

        handles = [module.register_forward_hook(lambda _m, _a, output, name=name: seen(name, output))
                   for name, module in model.named_modules() if isinstance(module, RECTIFIERS)
                   and "dead" in self.on]
        training = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                output = call_model(self.target, model, inputs, names, "on the probe batch")
                loss = float(loss_of(self.target, output, labels)) if "diverge" in self.on \
                    else math.nan
        finally:
            model.train(training)
            for handle in handles:
                handle.remove()
        #: What the last probe saw (its loss, each ReLU layer's dead share, in model order):
        #: the activations' part of a training state's novelty vector.
        self.seen = (loss, tuple(shares.values()))
        worst = max(shares.items(), key=lambda item: item[1], default=None)
        return loss, worst if worst is not None and worst[1] >= self.config.dead_share else None

    def _fired(self, name: str, objective: Callable[[StepView], Any], view: StepView) -> bool:
        try:
            return bool(objective(view))
        except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
            raise TargetError(f"{self.target.origin}: train objective {name} raised "
                              f"{type(error).__name__}: {first_line(error)}",
                              context=user_traceback(error)) from None


def _dead_share(output: Any) -> float:
    """Share of the layer's units (one value of one example's output) never positive."""
    tensors = [t for t in output_tensors(output) if t.dim() > 0]
    if not tensors or tensors[0].numel() == 0:
        return 0.0
    flat = tensors[0].detach().flatten(1) if tensors[0].dim() > 1 else tensors[0].detach()[:, None]
    return float((flat.amax(0) <= 0).float().mean())
