"""The activations check: what every layer outputs over the seeds.

A ReLU unit that is never positive on any seed is dead: it passes no
gradient and never learns. A sigmoid or tanh unit pinned near its limits on
every seed is saturated, with the same effect. NaN or Inf anywhere is a bug
before any input is mutated. The mean, spread and a histogram of every
layer go into the report, for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nnfuzz.doctor.result import CheckResult, Status, graded
from nnfuzz.doctor.subject import Subject
from nnfuzz.reading import output_tensors

#: Share of a layer's units dead (or saturated) that warns and that fails: a
#: freshly initialised ReLU layer has a few percent dead on typical data.
DEAD_WARN, DEAD_FAIL = 0.2, 0.5
#: A sigmoid or tanh unit is saturated where its derivative is below ~2% of its peak.
SATURATION = {torch.nn.Sigmoid: (0.01, 0.99), torch.nn.Tanh: (-0.99, 0.99)}
RECTIFIERS = (torch.nn.ReLU, torch.nn.ReLU6)
#: Bins of each layer's histogram in the report.
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class Layer:
    """One module's output over the batch: a unit is one value of one example's output."""

    name: str
    kind: str
    mean: float
    std: float
    nonfinite: bool
    #: Share of units dead (rectifiers) or saturated (sigmoid, tanh); None for other layers.
    stuck: float | None
    histogram: tuple[list[int], list[float]]

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "mean": self.mean, "std": self.std,
                "nonfinite": self.nonfinite, "stuck": self.stuck,
                "histogram": {"counts": self.histogram[0], "edges": self.histogram[1]}}


def activations(subject: Subject) -> CheckResult:
    """No dead ReLU layer, no saturated sigmoid/tanh layer, no NaN or Inf in any layer."""
    layers = _layer_outputs(subject)
    threshold = f"< {DEAD_WARN:.0%} of a layer dead/saturated, finite"
    broken = [layer.name for layer in layers if layer.nonfinite]
    stuck = [layer for layer in layers if layer.stuck is not None]
    worst_layer = max(stuck, key=lambda layer: layer.stuck or 0.0, default=None)
    share = worst_layer.stuck if worst_layer is not None and worst_layer.stuck is not None else 0.0
    data = {"layers": [layer.record() for layer in layers]}
    if broken:
        return CheckResult("activations", Status.FAIL, f"NaN/Inf in {broken[0]}", threshold,
                           f"'{broken[0]}' outputs NaN or Inf on a seed: run nnfuzz run to find "
                           "the operation, or guard it (an epsilon, a clamp).", measured=1.0,
                           data=data)
    status = graded(share, DEAD_WARN, DEAD_FAIL)
    if worst_layer is None:
        value, hint = f"{len(layers)} layers, finite", ("no nn.ReLU, nn.Sigmoid or nn.Tanh module "
                                                       "to check for dead units (functional calls "
                                                       "cannot be seen).")
    else:
        what = "dead" if worst_layer.kind in {kind.__name__ for kind in RECTIFIERS} else "saturated"
        value = f"{share:.0%} {what} in {worst_layer.name}"
        hint = ("units are alive and the activations finite." if status is Status.PASS else
                f"{share:.0%} of '{worst_layer.name}' is {what} on every seed, so it gets no "
                "gradient: check the init and bias of the layer before it, and the input scale.")
    return CheckResult("activations", status, value, threshold, hint, measured=share, data=data)


def _layer_outputs(subject: Subject) -> list[Layer]:
    """Every leaf module's output on the batch, summarised, in the order they ran."""
    model = subject.copy()
    leaves = [(name or "(model)", module) for name, module in model.named_modules()
              if not list(module.children())]
    seen: list[Layer] = []

    def hook(name: str, module: torch.nn.Module, output: Any) -> None:
        tensors = [t for t in output_tensors(output)
                   if t.dim() > 0 and t.shape[0] == subject.size and t.is_floating_point()]
        if tensors:
            seen.append(_summary(name, module, tensors[0].detach().flatten(1).float()))

    handles = [module.register_forward_hook(
        lambda module, _args, output, name=name: hook(name, module, output))
        for name, module in leaves]
    try:
        with torch.no_grad():
            subject.forward(model)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _summary(name: str, module: torch.nn.Module, flat: torch.Tensor) -> Layer:
    finite = flat[torch.isfinite(flat)]
    low, high = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
    counts = torch.histc(finite, HISTOGRAM_BINS, low, high) if finite.numel() else torch.zeros(0)
    edges = torch.linspace(low, high, HISTOGRAM_BINS + 1)
    return Layer(name=name, kind=type(module).__name__,
                 mean=float(finite.mean()) if finite.numel() else 0.0,
                 std=float(finite.std()) if finite.numel() > 1 else 0.0,
                 nonfinite=finite.numel() < flat.numel(), stuck=_stuck_share(module, flat),
                 histogram=([int(c) for c in counts], [float(e) for e in edges]))


def _stuck_share(module: torch.nn.Module, flat: torch.Tensor) -> float | None:
    """Share of units (columns of ``flat``, (N, units)) that no seed moves off a flat region."""
    if flat.shape[1] == 0:
        return None
    if isinstance(module, RECTIFIERS):
        return float((flat.amax(0) <= 0).float().mean())
    for kind, (low, high) in SATURATION.items():
        if isinstance(module, kind):
            return float(((flat <= low) | (flat >= high)).all(0).float().mean())
    return None
