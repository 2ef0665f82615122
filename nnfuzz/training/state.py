"""One copy of the target's model being trained along a trajectory, step by step, each step
judged: a non-finite loss, gradient or parameter ends it (the training ``nonfinite``)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from nnfuzz.domain import arguments, call
from nnfuzz.errors import TargetError, first_line, user_traceback
from nnfuzz.reading import primary_output
from nnfuzz.target import Target
from nnfuzz.training.setup import TrainConfig, TrainingSet, loss_of, make_optimizer
from nnfuzz.training.trajectory import Step


@dataclass(frozen=True)
class Broken:
    """What went non-finite, at which step (counted from 1): where (``loss``, ``gradient of
    P``, ``parameter P``, ``optimizer state S of P``) and what (NaN or Inf)."""

    where: str
    kind: str
    step: int

    @property
    def signature(self) -> str:
        return f"train-nonfinite:{self.where}"

    @property
    def detail(self) -> str:
        return f"{self.kind} in the training {self.where} at step {self.step}"


class TrainingState:
    """A copy of the target's model (never the user's object, which nnfuzz never trains: its
    weights are the starting state) and its optimizer, trained step by step on batches of
    ``data``."""

    def __init__(self, target: Target, data: TrainingSet, config: TrainConfig) -> None:
        self.target, self.data, self.config = target, data, config
        self.model = copy.deepcopy(target.model)
        self.model.train()
        self.optimizer = make_optimizer(target, self.model, config)
        self.named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        #: The last step's loss, and the gradient's norm (0 before any step).
        self.loss = math.nan
        self.gradient_norm = 0.0
        #: Steps taken so far.
        self.steps = 0

    def batch(self, step: Step) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The step's inputs (moved as it says, kept in the domain) and labels."""
        inputs = tuple(t[step.indices] for t in self.data.inputs)
        moved = tuple(t if delta is None else field.clamp(t + delta.to(t.dtype))
                      for t, delta, field in zip(inputs, step.deltas, self.data.domain.fields))
        return moved, self.data.labels[step.indices]

    def apply(self, step: Step) -> Broken | None:
        """One optimizer step along ``step``; what went non-finite, or None."""
        self.steps += 1
        found = self._step(*self.batch(step))
        return None if found is None else Broken(*found, step=self.steps)

    def _step(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> tuple[str, str] | None:
        """The step itself; where and what went non-finite, or None."""
        if self.target.train_step is not None:
            return self._users_step(inputs, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(inputs, labels)
        self.loss = float(loss.detach())
        if not math.isfinite(self.loss):
            return "loss", _kind(self.loss)
        loss.backward()
        grads = [(name, p.grad) for name, p in self.named if p.grad is not None]
        for name, grad in grads:
            if not bool(torch.isfinite(grad).all()):
                return f"gradient of {name}", _kind_of(grad)
        # In float64: a finite float32 gradient of 1e20 has a norm float32 cannot hold.
        self.gradient_norm = math.sqrt(sum(float(grad.double().square().sum()) for _, grad in grads))
        self.optimizer.step()
        return self._broken_parameter()

    def _users_step(self, inputs: tuple[torch.Tensor, ...],
                    labels: torch.Tensor) -> tuple[str, str] | None:
        try:
            value = self.target.train_step(self.model, (arguments(inputs, self.data.names), labels),
                                           self.optimizer)
        except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
            raise TargetError(f"{self.target.origin}: train_step() raised "
                              f"{type(error).__name__}: {first_line(error)}",
                              context=user_traceback(error)) from None
        self.loss = float(value.detach() if isinstance(value, torch.Tensor) else value)
        if not math.isfinite(self.loss):
            return "loss", _kind(self.loss)
        return self._broken_parameter()

    def _forward(self, inputs: tuple[torch.Tensor, ...]) -> object:
        """The model on a batch; the target's own exception (a forward that does not take a
        batch) is said as the target's."""
        try:
            return call(self.model, inputs, self.data.names)
        except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
            raise TargetError(f"{self.target.origin}: the model raised {type(error).__name__} "
                              f"while training on a batch of {inputs[0].shape[0]}: "
                              f"{first_line(error)}", context=user_traceback(error)) from None

    def _loss(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
        return loss_of(self.target, self._forward(inputs), labels)

    def _broken_parameter(self) -> tuple[str, str] | None:
        """A parameter, or the optimizer's state of one (Adam's moments), gone non-finite."""
        for name, parameter in self.named:
            if not bool(torch.isfinite(parameter).all()):
                return f"parameter {name}", _kind_of(parameter)
            for key, value in self.optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and value.is_floating_point() \
                        and not bool(torch.isfinite(value).all()):
                    return f"optimizer state {key} of {name}", _kind_of(value)
        return None

    def input_gradient(self, step: Step, toward: str) -> tuple[torch.Tensor | None, ...]:
        """The gradient, with respect to each float input of ``step``'s batch at the weights
        now, of the loss (``toward="loss"``: GRIST's direction) or of the outputs' magnitude
        (``"saturation"``: toward where a sigmoid rounds to 1 and an exp overflows). Taken in
        eval mode and on its own random stream, so that it changes neither the weights, nor
        batch statistics, nor what dropout draws next: a replay, which does not take it,
        trains the same."""
        inputs, labels = self.batch(step)
        leaves = tuple(t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs)
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                if toward == "loss":
                    loss = self._loss(leaves, labels)
                else:
                    loss = primary_output(self._forward(leaves)).abs().sum()
            if not loss.requires_grad or not bool(torch.isfinite(loss)):
                return tuple(None for _ in leaves)
            wanted = [t for t in leaves if t.requires_grad]
            grads = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
            return tuple(next(grads) if t.requires_grad else None for t in leaves)
        finally:
            self.model.train()
            self.optimizer.zero_grad(set_to_none=True)

    def vector(self) -> torch.Tensor:
        """The training state as a point for the novelty index: the loss, the gradient's norm
        and every parameter's norm, on a log scale (states differ by orders of magnitude)."""
        values = [self.loss if math.isfinite(self.loss) else 0.0, self.gradient_norm]
        values += [float(p.detach().norm()) for _, p in self.named]
        return torch.tensor([math.log10(abs(v) + 1e-12) for v in values], dtype=torch.float32)


def _kind(value: float) -> str:
    return "NaN" if math.isnan(value) else "Inf"


def _kind_of(tensor: torch.Tensor) -> str:
    return "NaN" if bool(tensor.isnan().any()) else "Inf"

