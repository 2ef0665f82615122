"""What ``nnfuzz doctor`` examines: a target's model, a batch of its seeds and its loss.

Every check works on a copy (:meth:`Subject.copy`): the user's model is never
trained, stepped, cast or hooked. Copies run in eval mode (dropout off, batch
norm on its running statistics) so that two runs of the doctor on the same
target give the same numbers, and the same numbers ``nnfuzz run`` would see.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.utils._pytree as pytree

from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import TargetError, UsageError, first_line, user_traceback
from nnfuzz.execution import model_device
from nnfuzz.reading import primary_output
from nnfuzz.target import Target, call_loss

#: --optimizer: the optimizers of the doctor's training checks, and of nnfuzz train where the
#: target has no optimizer(parameters).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass(frozen=True)
class DoctorConfig:
    """The options of ``nnfuzz doctor``; every check reads what it needs from here."""

    #: The optimizer of the overfit and update-size checks, at ``lr``.
    optimizer: str = "adam"
    #: 1e-3 is Adam's usual default; update-size says whether it suits this model.
    lr: float = 1e-3
    #: How many seeds (the first ones) the checks run on: enough for per-layer
    #: statistics, few enough to keep the doctor to seconds.
    batch_size: int = 64
    #: Optimizer steps, at most, for each overfit batch ("a few hundred").
    steps: int = 500
    #: Picks gradcheck's random directions; the same seed gives the same report.
    seed: int = 0
    #: The checks to run, by name; None runs them all.
    checks: tuple[str, ...] | None = None
    #: gradcheck value by value (parameters of up to FULL_GRADCHECK_VALUES values), not
    #: along one random direction per parameter (--gradcheck-all).
    gradcheck_all: bool = False


@dataclass
class Subject:
    """The target with a batch of seeds on the model's device, and its loss made safe to call."""

    target: Target
    config: DoctorConfig
    inputs: Inputs
    labels: torch.Tensor | None
    #: The model's primary output on ``inputs``, computed once (no gradient).
    output: torch.Tensor
    #: What the model returned on ``inputs`` (a dict, a tuple, ...), when not a tensor:
    #: the checks that feed the loss a made-up primary output put it in this structure.
    structure: Any = None

    @property
    def origin(self) -> str:
        return self.target.origin

    @property
    def size(self) -> int:
        return self.inputs[0].shape[0]

    # --- models ------------------------------------------------------------------

    def copy(self, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """A deep copy of the user's model, in eval mode, optionally cast."""
        model = copy.deepcopy(self.target.model).eval()
        return model.to(dtype) if dtype is not None else model

    def copy_with_gradients(self) -> torch.nn.Module:
        """A copy after one backward of the mean loss over the batch (``.grad`` filled in)."""
        model = self.copy()
        loss, _ = self.mean_loss(model)
        if loss.requires_grad:
            loss.backward()
        return model

    def fresh_model(self) -> torch.nn.Module:
        """The target's freshly initialised model (``init()`` or ``model(pretrained=False)``)."""
        build = self.target.init
        assert build is not None, "only for a target that can give a fresh model"
        name = f"{build.__name__}()" if hasattr(build, "__name__") else "model(pretrained=False)"
        try:
            model = build()
        except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
            raise TargetError(f"{self.origin}: {name} raised {type(error).__name__}: "
                              f"{first_line(error)}", context=user_traceback(error)) from None
        if not isinstance(model, torch.nn.Module):
            raise TargetError(f"{self.origin}: {name} returned {type(model).__name__}, not a "
                              "torch.nn.Module: return a freshly initialised model.")
        return model.to(model_device(self.target.model)).eval()

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.config.optimizer](self.trainable(model), lr=self.config.lr)

    # --- running -----------------------------------------------------------------

    def forward(self, model: Callable[..., Any], inputs: Inputs | None = None) -> torch.Tensor:
        """The primary output of ``model`` on ``inputs`` (default: the batch)."""
        return primary(model, self.inputs if inputs is None else inputs, self.origin,
                       self.target.input_names)

    def loss(self, output: Any, labels: torch.Tensor | None) -> torch.Tensor:
        """The target's ``loss(output, target)`` as it returns it: (N,), a scalar or worse;
        ``output`` is what the model returned (a dict stays a dict)."""
        if isinstance(output, torch.Tensor) and self.structure is not None:
            output = with_primary(self.structure, output)
        return call_loss(self.target, output, labels,
                         "fix loss() so it accepts any batch of outputs and labels.")

    def mean_loss(self, model: Callable[..., Any], rows: torch.Tensor | None = None,
                  inputs: Inputs | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean loss of ``model`` on the batch (or its ``rows``), and the output it came from."""
        inputs = self.inputs if inputs is None else inputs
        labels = self.labels
        if rows is not None:
            inputs = tuple(tensor[rows] for tensor in inputs)
            labels = labels[rows] if labels is not None else None
        output = run_model(model, inputs, self.origin, self.target.input_names)
        return self.loss(output, labels).mean(), primary_of(output, inputs, self.origin)

    # --- what the target is --------------------------------------------------------

    @functools.cached_property
    def classes(self) -> int | None:
        """The number of classes when the model is a classifier: its output (..., C)
        scores C >= 2 classes and the labels (...) are class indices below C."""
        labels, output = self.labels, self.output
        if labels is None or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            return None
        if output.dim() != labels.dim() + 1 or output.shape[:-1] != labels.shape:
            return None
        count = output.shape[-1]
        if count < 2 or len(labels) == 0 or labels.min() < 0 or labels.max() >= count:
            return None
        return count

    def accuracy(self, output: torch.Tensor, labels: torch.Tensor) -> float:
        return float((output.argmax(-1) == labels).float().mean())

    def missing(self, *, labels: bool) -> str | None:
        """What the target must define for a check that needs its loss (and labels)."""
        if self.target.loss is None:
            return "define loss(output, target) in the target" + (
                " and targets() with the label of each seed" if labels and self.labels is None
                else "")
        if labels and self.labels is None:
            return "define targets() with the label of each seed"
        return None

    def tiny_batch(self, count: int) -> torch.Tensor:
        """Rows of ``count`` seeds for the overfit check: one of each class first, so
        that fitting them means telling classes apart, then the next seeds in order."""
        count = min(count, self.size)
        if self.classes is None or self.labels is None or self.labels.dim() != 1:
            return torch.arange(count)
        first_of_each: dict[int, int] = {}
        for row, label in enumerate(self.labels.tolist()):
            first_of_each.setdefault(label, row)
        first = sorted(first_of_each.values())
        rest = [row for row in range(self.size) if row not in set(first)]
        return torch.tensor((first + rest)[:count])


def examine(target: Target, config: DoctorConfig) -> Subject:
    """The subject of the checks: the first ``batch_size`` seeds, on the model's device."""
    if target.seeds is None:
        raise TargetError(f"{target.origin}: no seeds() defined: nnfuzz doctor runs the model "
                          "on its seeds; define seeds() in the target.")
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer {config.optimizer!r} is unknown: choose "
                         f"{' or '.join(OPTIMIZERS)}.")
    if not config.lr > 0:
        raise UsageError(f"--lr {config.lr} must be a positive learning rate, e.g. 1e-3.")
    for option, value in (("--batch-size", config.batch_size), ("--steps", config.steps)):
        if value < 1:
            raise UsageError(f"{option} {value} must be at least 1.")
    device = model_device(target.model)
    inputs = tuple(tensor[:config.batch_size].to(device) for tensor in target.seeds)
    labels = target.labels[:config.batch_size].to(device) if target.labels is not None else None
    with torch.no_grad():
        returned = run_model(copy.deepcopy(target.model).eval(), inputs, target.origin,
                             target.input_names)
    output = primary_of(returned, inputs, target.origin)
    structure = None if isinstance(returned, torch.Tensor) else returned
    return Subject(target, config, inputs, labels, output, structure)


def primary(model: Callable[..., Any], inputs: Inputs, origin: str,
            names: Names = None) -> torch.Tensor:
    """The primary output (the README's *The target file*) of the model on ``inputs``."""
    return primary_of(run_model(model, inputs, origin, names), inputs, origin)


def run_model(model: Callable[..., Any], inputs: Inputs, origin: str, names: Names) -> Any:
    """What the model returns on ``inputs``; the model's failure is the target's."""
    try:
        return call(model, inputs, names)
    except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
        raise TargetError(f"{origin}: the model raised {type(error).__name__} on the seeds: "
                          f"{first_line(error)}: the seeds must be inputs the model accepts.",
                          context=user_traceback(error)) from None


def primary_of(output: Any, inputs: Inputs, origin: str) -> torch.Tensor:
    tensor = primary_output(output)
    if tensor is None or tensor.dim() == 0 or tensor.shape[0] != inputs[0].shape[0]:
        raise TargetError(f"{origin}: the model returned {type(output).__name__} with no tensor "
                          "whose first dimension is the batch: return a tensor (N, ...), or a "
                          "tuple, list or dict of them.")
    return tensor


def with_primary(structure: Any, tensor: torch.Tensor) -> Any:
    """``structure`` (what the model returned) with its primary output replaced by ``tensor``."""
    if isinstance(structure, Mapping) and isinstance(structure.get("logits"), torch.Tensor):
        replaced = dict(structure)
        replaced["logits"] = tensor
        return replaced
    leaves, spec = pytree.tree_flatten(structure)
    first = next((i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)), None)
    if first is None:
        return tensor
    leaves[first] = tensor
    return pytree.tree_unflatten(leaves, spec)


def in_dtype(inputs: Inputs, dtype: torch.dtype) -> Inputs:
    """Float inputs cast to ``dtype``; token and index inputs as they are."""
    return tuple(t.to(dtype) if t.dtype.is_floating_point else t for t in inputs)
