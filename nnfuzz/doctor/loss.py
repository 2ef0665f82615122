"""The loss-sanity check: the target's ``loss(output, target)`` keeps the contract
and behaves like a loss.

The contract (README, "The target file") asks for one loss per example (N,)
or a scalar. A loss that mixes examples (a softmax over the batch axis, a
normalisation by the batch) breaks the ``loss`` objective, which bisects
batches, and hides bugs of one example behind the others; a negative
classification loss is a log-likelihood of raw logits; a loss that does not
fall along its own negative gradient has a wrong backward.
"""

from __future__ import annotations

import math

import torch

from nnfuzz.doctor.result import CheckResult, Status, skipped, worst
from nnfuzz.doctor.subject import Subject

#: Examples whose loss is recomputed alone for the batch-independence test.
ALONE_EXAMPLES = 8
#: How far an example's loss in the batch may differ from its loss alone
#: (relative, plus the same absolute): float32 noise, not a dependence.
ALONE_TOLERANCE = 1e-4
#: A classification loss below this is negative, not rounding.
NEGATIVE_TOLERANCE = 1e-6
#: The descent test's step, as a share of the output's root-mean-square size.
DESCENT_STEP = 1e-3

Finding = tuple[Status, str, str]


def loss_sanity(subject: Subject) -> CheckResult:
    """Finite, shaped (N,) or scalar, not negative for a classifier, falling along
    its negative gradient, and each example's loss independent of the others."""
    name = "loss-sanity"
    missing = subject.missing(labels=False)
    if missing:
        return skipped(name, "no loss", f"{missing} to check it.")
    output = subject.output.detach().clone().requires_grad_()
    value = subject.loss(output, subject.labels)
    findings = [*_shape(value, subject.size), *_values(value, subject.classes is not None)]
    if not any(status is Status.FAIL for status, _, _ in findings):
        findings += _descent(subject, output, value) + _independence(subject, value)
    status = worst([status for status, _, _ in findings])
    shown = [finding for finding in findings if finding[0] is status]
    value_text = (shown[0][1] if shown else
                  f"finite, shape {tuple(value.shape)}, {float(value.detach().mean()):.4g} mean")
    hint = shown[0][2] if shown else "the loss keeps the contract and falls along its gradient."
    threshold = "finite, (N,) or (), >= 0, falls along -grad, per example"
    return CheckResult(name, status, value_text, threshold, hint,
                       measured=float(value.detach().mean()) if value.numel() else None,
                       data={"problems": [what for _, what, _ in findings]})


def _shape(value: torch.Tensor, size: int) -> list[Finding]:
    if value.dim() == 0 or tuple(value.shape) == (size,):
        return []
    if value.dim() > 1 and value.shape[0] == size:
        return [(Status.WARN, f"shape {tuple(value.shape)}",
                 "the loss is (N, ...): nnfuzz sums it per example; return (N,) or a scalar.")]
    return [(Status.FAIL, f"shape {tuple(value.shape)} for a batch of {size}",
             f"return one loss per example (N,) = ({size},) or a scalar: is it reduced over the "
             "batch axis instead of the class axis?")]


def _values(value: torch.Tensor, classifier: bool) -> list[Finding]:
    value = value.detach()
    if not bool(torch.isfinite(value).all()):
        return [(Status.FAIL, "NaN/Inf on the seeds",
                 "the loss is not finite on the seeds: guard its logs and divisions "
                 "(log_softmax rather than log(softmax), an epsilon).")]
    if classifier and float(value.min()) < -NEGATIVE_TOLERANCE:
        return [(Status.FAIL, f"negative: min {float(value.min()):.4g}",
                 "a classification loss below zero: nll_loss of raw logits? use cross_entropy, "
                 "or log_softmax before nll_loss.")]
    return []


def _descent(subject: Subject, output: torch.Tensor, value: torch.Tensor) -> list[Finding]:
    """A small step of the output along the negative gradient of the mean loss lowers it."""
    total = value.mean()
    if not total.requires_grad:
        return [(Status.FAIL, "no gradient w.r.t. the output",
                 "the loss does not depend on the output through autograd (.item(), .detach(), "
                 "argmax, torch.no_grad): compute it from the output tensor.")]
    (gradient,) = torch.autograd.grad(total, output)
    norm = float(gradient.norm())
    if norm == 0 or not math.isfinite(norm):
        return [] if norm == 0 else [(Status.FAIL, "non-finite gradient",
                                      "the loss's gradient is NaN or Inf on the seeds.")]
    step = DESCENT_STEP * max(float(output.detach().pow(2).mean().sqrt()), 1.0)
    with torch.no_grad():
        moved = subject.loss(output - step * gradient / norm, subject.labels).mean()
    before, after = float(total.detach()), float(moved)
    if after < before:
        return []
    return [(Status.FAIL, f"rises along -grad: {before:.6g} -> {after:.6g}",
             "the loss does not fall along its negative gradient: a hand-written backward "
             "with a wrong sign, or a loss that is not differentiable here.")]


def _independence(subject: Subject, value: torch.Tensor) -> list[Finding]:
    """Each example's loss is the same in the batch as alone (a scalar: the mean or sum)."""
    output, targets = subject.output, subject.labels
    count = subject.size if value.dim() == 0 else min(ALONE_EXAMPLES, subject.size)
    with torch.no_grad():
        alone = torch.stack([subject.loss(output[i:i + 1], None if targets is None
                                          else targets[i:i + 1]).double().sum()
                             for i in range(count)])
    batch = value.detach().double()
    if value.dim() == 0:
        matches = [_close(batch, alone.mean()), _close(batch, alone.sum())]
    else:
        together = batch.reshape(subject.size, -1).sum(1)[:count]
        matches = [_close(together, alone)]
    if any(matches):
        return []
    return [(Status.FAIL, "depends on the other examples",
             "an example's loss changes with the rest of its batch: a softmax or normalisation "
             "over the batch axis (dim=0)? compute it over the class axis (dim=-1).")]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a - b).abs() <= ALONE_TOLERANCE * (1 + b.abs())).all())
