"""The checks that train a copy of the model: initial loss, overfitting a tiny
batch, and the size of one optimizer step.

They ask whether the model can learn at all, before any time is spent
training or fuzzing it: a fresh model should predict about uniformly, a few
hundred steps should fit a handful of examples perfectly, and one step should
move each weight by about a thousandth of its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nnfuzz.doctor.result import CheckResult, Status, graded, skipped, worst
from nnfuzz.doctor.subject import Subject

#: Initial loss over the loss of uniform (all-zero) logits: a fresh model with
#: small logits lands near 1; logits with a standard deviation of 1 add about
#: 0.5 for cross-entropy (1.2x at ten classes); twice the uniform loss means
#: confident, wrong predictions before any training.
INITIAL_WARN, INITIAL_FAIL = 1.5, 2.0
#: Below half the uniform loss a model knows the answers before training:
#: a label leak, or init() returning trained weights.
INITIAL_LOW = 0.5
#: Seeds in the two tiny batches of the overfit check.
OVERFIT_BATCHES = (2, 8)
#: "Near zero": the loss fell to this fraction of where it started.
OVERFIT_NEAR_ZERO = 0.02
#: Without classes to count, a loss still above this fraction did not fit.
OVERFIT_FAIL = 0.5
#: Karpathy's rule of thumb for the update-to-weight ratio of one step.
HEALTHY_UPDATE = 1e-3
#: Orders of magnitude from HEALTHY_UPDATE that warn and fail. Adam's first
#: step at 1e-3 on PyTorch's default init gives 1e-2 for a 64-input layer (one
#: order up), SGD gives 1e-4; 2.5 orders is a learning rate wrong by ~300x.
UPDATE_WARN_ORDERS, UPDATE_FAIL_ORDERS = 1.5, 2.5


def initial_loss(subject: Subject) -> CheckResult:
    """The fresh model's mean loss is close to the loss of uniform logits (ln C for cross-entropy)."""
    name = "initial-loss"
    missing = subject.missing(labels=True)
    if missing:
        return skipped(name, "no loss or targets", f"{missing} to check the initial loss.")
    classes = subject.classes
    if classes is None:
        return skipped(name, "not a classifier", "this check is for classifiers: an output "
                       "(..., C) and integer targets (...) below C.")
    if subject.target.init is None:
        return skipped(name, "no fresh model", "define init() returning a freshly initialised "
                       "model, or give model() a pretrained=False keyword.")
    with torch.no_grad():
        fresh, _ = subject.mean_loss(subject.fresh_model())
        uniform = subject.loss(torch.zeros_like(subject.output), subject.labels).mean()
    loss, reference = float(fresh), float(uniform)
    baseline = f"{reference:.4g}" + (f" (ln {classes})" if _is_log(reference, classes) else
                                     " (uniform logits)")
    threshold = f"{INITIAL_LOW:g}-{INITIAL_WARN:g}x {baseline}"
    if not (math.isfinite(reference) and reference > 0):
        return skipped(name, f"uniform loss {reference:.4g}", "the loss of all-zero logits is "
                       "not positive: not a cross-entropy-like loss; see loss-sanity.")
    ratio = loss / reference
    status = graded(ratio, INITIAL_WARN, INITIAL_FAIL)
    if status is Status.PASS and ratio < INITIAL_LOW:
        status = Status.WARN
    hints = {Status.PASS: "the fresh model predicts about uniformly, as it should.",
             Status.WARN: "the fresh model's loss is off: check the last layer's init scale, or "
                          "whether init() returns trained weights.",
             Status.FAIL: "the fresh model is confidently wrong: its logits are too large; "
                          "shrink the init of the last layers (or of the whole model)."}
    return CheckResult(name, status, f"{loss:.4g} = {ratio:.2f}x", threshold, hints[status],
                       measured=loss, data={"loss": loss, "uniform_loss": reference,
                                            "classes": classes})


def _is_log(value: float, classes: int) -> bool:
    return abs(value - math.log(classes)) <= 1e-3 * math.log(classes)


@dataclass(frozen=True)
class Fit:
    """One overfit run: the loss at every step, and how it ended."""

    seeds: int
    losses: list[float]
    #: Share of the batch classified right at the end; None without classes.
    accuracy: float | None

    @property
    def fell_to(self) -> float:
        first, last = self.losses[0], self.losses[-1]
        return last / first if first > 0 else (0.0 if last <= 0 else math.inf)

    def status(self) -> Status:
        if not math.isfinite(self.losses[-1]):
            return Status.FAIL
        if self.accuracy is not None and self.accuracy < 1:
            return Status.FAIL
        if self.fell_to <= OVERFIT_NEAR_ZERO:
            return Status.PASS
        return Status.WARN if self.accuracy is not None or self.fell_to <= OVERFIT_FAIL else Status.FAIL

    def describe(self) -> str:
        accuracy = (f", acc {self.accuracy:.0%}" if self.accuracy is not None and self.accuracy < 1
                    else "")
        return f"{self.seeds} seeds: {self.losses[-1]:.2g} in {len(self.losses) - 1} steps{accuracy}"


def overfit(subject: Subject) -> CheckResult:
    """A few hundred steps on 2 seeds, then 8, bring the loss near zero (and accuracy to 100%)."""
    name = "overfit"
    missing = subject.missing(labels=False)
    if missing:
        return skipped(name, "no loss", f"{missing} to check that the model can fit a batch.")
    threshold = (f"< {OVERFIT_NEAR_ZERO:.0%} of start" +
                 (", acc 100%" if subject.classes is not None else "") +
                 f", {subject.config.steps} steps")
    if not subject.trainable(subject.target.model):
        return CheckResult(name, Status.FAIL, "no trainable parameter", threshold,
                           "every parameter has requires_grad=False: unfreeze the layers to train.",
                           measured=0.0)
    fits = [_fit(subject, subject.tiny_batch(count)) for count in dict.fromkeys(
        min(count, subject.size) for count in OVERFIT_BATCHES)]
    status = worst([fit.status() for fit in fits])
    hints = {Status.PASS: "the model can learn: it fits a tiny batch.",
             Status.WARN: "the loss falls but not to near zero: a loss with a floor (label "
                          "smoothing), or try more --steps or a higher --lr.",
             Status.FAIL: "it cannot fit a handful of examples: a frozen layer, a detached "
                          "graph, labels that do not match the output, a model too small, "
                          f"or --lr too low for {subject.config.optimizer}."}
    return CheckResult(name, status, "; ".join(fit.describe() for fit in fits), threshold,
                       hints[status], measured=fits[-1].fell_to,
                       data={"curves": {str(fit.seeds): fit.losses for fit in fits},
                             "accuracy": {str(fit.seeds): fit.accuracy for fit in fits}})


def _fit(subject: Subject, rows: torch.Tensor) -> Fit:
    """Train a copy on ``rows`` until it fits them or the steps run out."""
    model = subject.copy()
    optimizer = subject.optimizer(model)
    targets = subject.labels[rows] if subject.labels is not None else None
    classifier = subject.classes is not None and targets is not None
    losses: list[float] = []
    accuracy = None
    for step in range(subject.config.steps + 1):
        loss, output = subject.mean_loss(model, rows)
        losses.append(float(loss.detach()))
        if classifier:
            accuracy = subject.accuracy(output.detach(), targets)  # type: ignore[arg-type]
        fitted = losses[-1] <= OVERFIT_NEAR_ZERO * losses[0] and accuracy in (None, 1.0)
        if fitted or not math.isfinite(losses[-1]) or step == subject.config.steps:
            break
        optimizer.zero_grad()
        if loss.requires_grad:
            loss.backward()
        optimizer.step()
    return Fit(len(rows), losses, accuracy)


def update_size(subject: Subject) -> CheckResult:
    """After one optimizer step, each parameter moved by about 1e-3 of its norm."""
    name = "update-size"
    missing = subject.missing(labels=False)
    if missing:
        return skipped(name, "no loss", f"{missing} to measure an optimizer step.")
    model = subject.copy_with_gradients()
    before = {key: p.detach().clone() for key, p in model.named_parameters() if p.requires_grad}
    subject.optimizer(model).step()
    ratios = {}
    for parameter_name, parameter in model.named_parameters():
        old = before.get(parameter_name)
        gradient = parameter.grad
        # No gradient, an all-zero one and zero weights are gradient-flow's and activations'
        # findings; a ratio to a zero norm says nothing.
        if old is None or gradient is None or not bool(gradient.any()) or not bool(old.any()):
            continue
        ratios[parameter_name] = float((parameter.detach() - old).norm() / old.norm())
    threshold = (f"{HEALTHY_UPDATE * 10 ** -UPDATE_WARN_ORDERS:.0e}.."
                 f"{HEALTHY_UPDATE * 10 ** UPDATE_WARN_ORDERS:.0e} ({HEALTHY_UPDATE:g} "
                 f"±{UPDATE_WARN_ORDERS:g} orders)")
    if not ratios:
        return skipped(name, "no parameter to measure", "no trainable parameter has both "
                       "non-zero weights and a gradient to compare (a zero-initialised head "
                       "gets them after its first steps).")
    orders = {key: _orders_from_healthy(ratio) for key, ratio in ratios.items()}
    farthest = max(orders, key=lambda key: orders[key])
    status = graded(orders[farthest], UPDATE_WARN_ORDERS, UPDATE_FAIL_ORDERS)
    low, high = min(ratios.values()), max(ratios.values())
    direction = "raise" if ratios[farthest] < HEALTHY_UPDATE else "lower"
    hint = ("one step moves each layer by a healthy share of its weights." if status is Status.PASS
            else f"'{farthest}' moves by {ratios[farthest]:.1e} of its norm per step: {direction} "
                 "--lr (and the training learning rate), or rescale that layer's init.")
    return CheckResult(name, status, f"{low:.1e}..{high:.1e} (worst {farthest})", threshold, hint,
                       measured=ratios[farthest], data={"ratios": ratios})


def _orders_from_healthy(ratio: float) -> float:
    return math.inf if ratio <= 0 or not math.isfinite(ratio) else abs(math.log10(ratio / HEALTHY_UPDATE))
