"""One copy of the target's model being trained along a trajectory, step by step, each step
judged by the run's training objectives (nnfuzz.training.objectives)."""

from __future__ import annotations

import copy
import math

import torch

from nnfuzz.domain import arguments
from nnfuzz.errors import TargetError, first_line, user_traceback
from nnfuzz.reading import primary_output
from nnfuzz.target import Target
from nnfuzz.training import hyperparameters
from nnfuzz.training.objectives import Broken, Judge, StepView
from nnfuzz.training.setup import TrainConfig, TrainingSet, call_model, loss_of, make_optimizer
from nnfuzz.training.trajectory import Step

#: Where and what a check found: (objective, what, where).
Found = tuple[str, str, str]


class TrainingState:
    """A copy of the target's model (never the user's object, which nnfuzz never trains: its
    weights are the starting state) and its optimizer at ``values`` (the trajectory's
    hyperparameters), trained step by step on batches of ``data``."""

    def __init__(self, target: Target, data: TrainingSet, config: TrainConfig,
                 judge: Judge | None = None, values: dict[str, float] | None = None) -> None:
        self.target, self.data, self.config = target, data, config
        #: The run's objectives (measured once per run; made here for a state on its own).
        self.judge = judge or Judge(target, data, config)
        self.model = copy.deepcopy(target.model)
        self.model.train()
        self.optimizer = make_optimizer(target, self.model, config)
        hyperparameters.apply(self.optimizer, values or {})
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
        return moved, self.data.labels[step.indices if step.labels is None else step.labels]

    def apply(self, step: Step, judged: bool = True, probe: bool = True) -> Broken | None:
        """One optimizer step along ``step``; the first objective that fired, or None.
        ``judged=False``: a step already judged when it was new, replayed to re-derive a
        state — training is deterministic on the CPU, so it is trained as a plain loop
        would, unchecked (most of the engine's steps are such replays). ``probe=False``
        leaves out the probe batch's objectives (``dead``, ``diverge``) for this step."""
        self.steps += 1
        inputs, labels = self.batch(step)
        if not judged:
            self._replay(inputs, labels)
            return None
        found = self._step(inputs, labels)
        if found is None and judged:
            found = self.judge.after_step(StepView(self.steps, self.loss, self.gradient_norm,
                                                   self.model, self.optimizer, inputs, labels),
                                          probe)
        return None if found is None else Broken(found[0], found[1], self.steps, found[2])

    def _step(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> Found | None:
        """The step itself; what it found non-finite or exploding, or None."""
        if self.target.train_step is not None:
            return self._users_step(inputs, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(inputs, labels)
        self.loss = float(loss.detach())
        if not math.isfinite(self.loss):
            return _nonfinite("loss", self.loss)
        loss.backward()
        found = self._gradients()
        if found is not None:
            return found
        self.optimizer.step()
        return self._parameters()

    def _replay(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> None:
        if self.target.train_step is not None:
            self._users_step(inputs, labels, judged=False)
            return
        self.optimizer.zero_grad(set_to_none=True)
        self._loss(inputs, labels).backward()
        self.optimizer.step()

    def _users_step(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor,
                    judged: bool = True) -> Found | None:
        try:
            value = self.target.train_step(self.model, (arguments(inputs, self.data.names), labels),
                                           self.optimizer)
        except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
            raise TargetError(f"{self.target.origin}: train_step() raised "
                              f"{type(error).__name__}: {first_line(error)}",
                              context=user_traceback(error)) from None
        if not judged:
            return None
        self.loss = float(value.detach() if isinstance(value, torch.Tensor) else value)
        if not math.isfinite(self.loss):
            return _nonfinite("loss", self.loss)
        # Its gradients are its own (scaled by a GradScaler, clipped): not judged.
        return self._parameters()

    def _gradients(self) -> Found | None:
        """A non-finite gradient (named), or one whose global norm explodes."""
        grads = [(name, p.grad) for name, p in self.named if p.grad is not None]
        if not grads:
            return None
        norms = _norms([g for _, g in grads])
        if not bool(torch.isfinite(norms).all()):
            for name, grad in grads:  # rare: say which; a finite float32 norm may overflow
                if not bool(torch.isfinite(grad).all()):
                    return _nonfinite(f"gradient of {name}", grad)
            norms = torch.stack([g.double().norm() for _, g in grads])
        self.gradient_norm = float(norms.square().sum().sqrt())
        return self.judge.after_backward(self.gradient_norm)

    def _parameters(self) -> Found | None:
        """A parameter, or the optimizer's state of one (Adam's moments), gone non-finite:
        one fused norm over them all, and a search for the name only when one is."""
        tensors = [("parameter " + name, p.detach()) for name, p in self.named]
        tensors += [(f"optimizer state {key} of {name}", value)
                    for name, p in self.named
                    for key, value in self.optimizer.state.get(p, {}).items()
                    if isinstance(value, torch.Tensor) and value.is_floating_point()]
        if bool(torch.isfinite(_norms([t for _, t in tensors])).all()):
            return None
        for where, tensor in tensors:
            if not bool(torch.isfinite(tensor).all()):
                return _nonfinite(where, tensor)
        return None

    def _forward(self, inputs: tuple[torch.Tensor, ...]) -> object:
        """The model on a batch; the target's own exception (a forward that does not take a
        batch) is said as the target's."""
        return call_model(self.target, self.model, inputs, self.data.names,
                          "while training on a batch")

    def _loss(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
        return loss_of(self.target, self._forward(inputs), labels)

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
        and every parameter's norm, on a log scale (states differ by orders of magnitude),
        then what the probe saw of the activations at these weights (taken at the end of
        every extension): its loss (log scale) and each ReLU layer's share of dead units."""
        values = [self.loss if math.isfinite(self.loss) else 0.0, self.gradient_norm]
        values += [float(p.detach().norm()) for _, p in self.named]
        probe_loss, shares = self.judge.seen
        if math.isfinite(probe_loss):
            values.append(probe_loss)
        logs = [math.log10(abs(v) + 1e-12) for v in values]
        return torch.tensor(logs + list(shares), dtype=torch.float32)


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Every tensor's norm, in float64, in one fused kernel where they share a dtype: NaN
    where a tensor holds a NaN, Inf where it holds an Inf (or its float32 norm overflows)."""
    norms = torch._foreach_norm(tensors)
    if len({n.dtype for n in norms}) > 1:
        norms = [n.double() for n in norms]
    return torch.stack(norms).double()


def _nonfinite(where: str, value: float | torch.Tensor) -> Found:
    nan = math.isnan(value) if isinstance(value, float) else bool(value.isnan().any())
    return "nonfinite", f"{'NaN' if nan else 'Inf'} in the training {where}", where
