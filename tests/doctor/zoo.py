"""Digits classifiers for the doctor's tests: a healthy one, and one broken model per check.

Each broken model has one planted bug, the kind the check named in BROKEN is
there to catch. All extend the bundled example's healthy 64-32-10 MLP and run
on its first 16 digits seeds, so that only the bug differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from nnfuzz.target import Target, in_memory, load_target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "doctor_digits.py"
#: Seeds each zoo model is examined on: fewer than the bundled 32, for speed.
SEEDS = 16

#: The bundled example: its digits seeds, labels and healthy MLP are where the zoo starts.
_EXAMPLE = load_target(EXAMPLE)
#: The healthy 64-32-10 MLP (hidden, relu, head) of the example, which every broken model extends.
MLP: type[nn.Module] = type(_EXAMPLE.model)


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first SEEDS bundled digits seeds (N, 64), intensities 0..16, and their labels (N,)."""
    assert _EXAMPLE.seeds is not None and _EXAMPLE.labels is not None
    return _EXAMPLE.seeds[0][:SEEDS], _EXAMPLE.labels[:SEEDS]


#: The example's loss: cross-entropy per example, (N,).
cross_entropy: Callable[..., torch.Tensor] = _EXAMPLE.loss  # type: ignore[assignment]


class DeadReLU(MLP):
    """A second ReLU branch whose layer's bias starts at -50: every unit of
    ``dead_relu`` is dead on every digit (the first branch keeps the model learning)."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Linear(64, 32)
        self.dead_relu = nn.ReLU()
        self.wide_head = nn.Linear(32, 10)
        with torch.no_grad():
            self.wide.bias.fill_(-50.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.wide_head(self.dead_relu(self.wide(x / 16)))


class DetachedBranch(MLP):
    """A second branch whose output is detached: its parameters never get a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.branch(x / 16).detach()


class _LinearFunction(torch.autograd.Function):
    """PyTorch's "extending autograd" linear layer, with the bias gradient's sign flipped."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return x @ weight.t() + bias

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, weight = ctx.saved_tensors
        return grad @ weight, grad.t() @ x, -grad.sum(0)  # the bug: -grad for the bias


class WrongSignBackward(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = _LinearFunction.apply(x / 16, self.hidden.weight, self.hidden.bias)
        return self.head(self.relu(hidden))


def wrong_axis_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A hand-written cross-entropy summed over the batch axis instead of the classes:
    (C,), one sum per class, where the contract wants (N,)."""
    return (-F.log_softmax(output, dim=1) * F.one_hot(target, 10)).sum(dim=0)  # the bug: dim=1


def softmax_over_batch_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the softmax over the batch (dim=0) instead of the classes: (N,),
    but each example's loss depends on the others."""
    return -F.log_softmax(output, dim=0).gather(1, target.view(-1, 1)).squeeze(1)


class ExplodingInit(MLP):
    """Every weight and bias ten times PyTorch's default: logits a hundred times too large."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.mul_(10.0)


class FrozenHead(MLP):
    """The classifier head frozen (requires_grad=False) along with the backbone it was
    meant to sit on: only a per-class bias, for class priors, is left to train."""

    def __init__(self) -> None:
        super().__init__()
        self.prior = nn.Parameter(torch.zeros(10))
        self.hidden.requires_grad_(False)
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.prior


class TinyInit(MLP):
    """Every weight and bias a thousandth of PyTorch's default: one Adam step at 1e-3
    moves each of them by more than its own size."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.mul_(1e-3)


def build(model_class: Callable[[], nn.Module], loss: Callable[..., torch.Tensor] = cross_entropy
          ) -> Target:
    """A target of ``model_class`` on the digits, with init() building a fresh one."""
    def init() -> nn.Module:
        torch.manual_seed(0)
        return model_class()

    seeds, labels = digits()
    return in_memory(init(), seeds, targets=labels, loss=loss, init=init)


HEALTHY = (MLP, cross_entropy)
#: The check each broken model is there to fail, and how to build it.
BROKEN: dict[str, tuple[Callable[[], nn.Module], Callable[..., torch.Tensor]]] = {
    "initial-loss": (ExplodingInit, cross_entropy),
    "overfit": (FrozenHead, cross_entropy),
    "gradcheck": (WrongSignBackward, cross_entropy),
    "gradient-flow": (DetachedBranch, cross_entropy),
    "activations": (DeadReLU, cross_entropy),
    "update-size": (TinyInit, cross_entropy),
    "loss-sanity": (MLP, wrong_axis_loss),
}
