"""The checks of the gradients: are they right (gradcheck), and do they reach
every layer at a useful size (gradient flow)?

A hand-written backward with a bug, or a step that autograd cannot see
through, gives gradients that disagree with finite differences; a
``.detach()`` or an unused module leaves parameters without any gradient;
a bad init makes gradient norms vanish or explode from layer to layer.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.func import functional_call

from nnfuzz.doctor.result import CheckResult, Status, skipped, worst
from nnfuzz.doctor.subject import Subject, in_dtype
from nnfuzz.errors import NnfuzzError, first_line

#: Examples the gradient check runs on: a few, since it costs two forward
#: passes per parameter value checked.
GRADCHECK_EXAMPLES = 4
#: By default every parameter is checked along one random direction (gradcheck's fast
#: mode: a few float64 passes whatever its size): a sample of its values, mixed. With
#: --gradcheck-all, parameters up to this many values are checked value by value (two
#: float64 passes each): on a 2M-parameter ViT that took 510 CPU-seconds, against 8.
FULL_GRADCHECK_VALUES = 512
#: Parameter tensors checked at most, spread evenly over the model.
GRADCHECK_TENSORS = 64
#: torch.autograd.gradcheck's own tolerances for float64.
GRADCHECK_EPS, GRADCHECK_ATOL, GRADCHECK_RTOL = 1e-6, 1e-5, 1e-3
#: A layer's gradient norm below these fractions of the largest one vanishes.
VANISHING_WARN, VANISHING_FAIL = 1e-4, 1e-6
#: Gradient norms above these explode; a mean loss of a healthy model gives O(1).
EXPLODING_WARN, EXPLODING_FAIL = 1e3, 1e5

#: The scalar gradcheck differentiates, given parameters that replace the model's.
Scalar = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def gradcheck(subject: Subject) -> CheckResult:
    """Analytic gradients of the loss w.r.t. each parameter match finite differences in float64."""
    name = "gradcheck"
    every = subject.config.gradcheck_all
    threshold = (f"float64, {'every value up to 512' if every else 'one random direction'} "
                 f"per parameter, atol {GRADCHECK_ATOL:g}, rtol {GRADCHECK_RTOL:g}")
    try:
        model = subject.copy(torch.float64)
        scalar = _scalar_function(subject, model)
        reached = _reached_parameters(model, scalar)
    except NnfuzzError:
        raise
    except Exception as error:  # noqa: BLE001 - the model may not run in float64 at all
        return skipped(name, "cannot run in float64",
                       f"the model or loss raised {type(error).__name__} in float64: "
                       f"{first_line(error)}")
    if reached is None:
        return skipped(name, "float32 output", "the model or loss computes in float32 even on "
                       "float64 weights and inputs, too coarse for finite differences.")
    checked = evenly_spread(list(reached), GRADCHECK_TENSORS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(subject.config.seed)  # fast mode's random directions
        wrong = [key for key in checked if not _matches(key, reached[key], scalar, every)]
    value = f"{len(wrong)} of {len(checked)} parameters mismatch" + (
        f": {', '.join(wrong[:3])}" if wrong else "")
    hint = ("autograd's gradients match finite differences." if not wrong else
            f"the gradient of '{wrong[0]}' is wrong: look for a hand-written backward "
            "(autograd.Function) or a non-differentiable step between it and the loss.")
    return CheckResult(name, Status.FAIL if wrong else Status.PASS, value, threshold, hint,
                       measured=float(len(wrong)), data={"checked": checked, "wrong": wrong})


def _scalar_function(subject: Subject, model: torch.nn.Module) -> Scalar:
    """The scalar whose gradient is checked, as a function of parameters that replace the
    model's: the mean loss, or without a loss a fixed random projection of the output
    (every output value counts)."""
    rows = torch.arange(min(GRADCHECK_EXAMPLES, subject.size))
    inputs = in_dtype(subject.inputs, torch.float64)
    generator = torch.Generator().manual_seed(subject.config.seed)
    weights = torch.randn(subject.output[rows].shape, generator=generator, dtype=torch.float64)

    def scalar(replaced: dict[str, torch.Tensor]) -> torch.Tensor:
        def swapped(*args: torch.Tensor, **kwargs: torch.Tensor) -> object:
            return functional_call(model, replaced, args, kwargs)

        if subject.target.loss is not None:
            return subject.mean_loss(swapped, rows, inputs)[0]
        output = subject.forward(swapped, tuple(t[rows] for t in inputs))
        return (output * weights.to(output.device)).sum()

    return scalar


def _reached_parameters(model: torch.nn.Module, scalar: Scalar) -> dict[str, torch.Tensor] | None:
    """Trainable parameters the scalar has a gradient for (those without one are
    gradient-flow's finding); None when the scalar is not float64."""
    value = scalar({})
    if value.dtype != torch.float64:
        return None
    named = {key: p for key, p in model.named_parameters() if p.requires_grad}
    if not value.requires_grad or not named:
        return {}
    gradients = torch.autograd.grad(value, list(named.values()), allow_unused=True)
    reached = {key: p.detach() for (key, p), g in zip(named.items(), gradients) if g is not None}
    model.requires_grad_(False)  # from here on, each check differentiates one tensor only
    return reached


def _matches(key: str, parameter: torch.Tensor, scalar: Scalar, every_value: bool) -> bool:
    return torch.autograd.gradcheck(
        lambda value: scalar({key: value}), (parameter.clone().requires_grad_(),),
        eps=GRADCHECK_EPS, atol=GRADCHECK_ATOL, rtol=GRADCHECK_RTOL, raise_exception=False,
        fast_mode=not every_value or parameter.numel() > FULL_GRADCHECK_VALUES)


def evenly_spread(items: list[Any], most: int) -> list[Any]:
    """At most ``most`` items, spread evenly from the first to the last."""
    if len(items) <= most:
        return items
    step = (len(items) - 1) / (most - 1)
    return [items[round(i * step)] for i in range(most)]


def gradient_flow(subject: Subject) -> CheckResult:
    """Every trainable parameter gets a finite gradient of a useful size from one backward."""
    name = "gradient-flow"
    missing = subject.missing(labels=False)
    if missing:
        return skipped(name, "no loss", f"{missing} to see how gradients flow.")
    model = subject.copy_with_gradients()
    frozen = [key for key, p in model.named_parameters() if not p.requires_grad]
    unreached = [key for key, p in model.named_parameters() if p.requires_grad and p.grad is None]
    norms = {key: float(p.grad.norm()) for key, p in model.named_parameters()
             if p.requires_grad and p.grad is not None}
    largest = max((n for n in norms.values() if math.isfinite(n)), default=0.0)
    findings = _flow_findings(norms, unreached, largest)
    status = worst([status for status, _, _ in findings])
    value = (f"largest {largest:.2g}" + (f", smallest {min(norms.values()):.2g}" if norms else "")
             + (f"; {len(frozen)} frozen" if frozen else ""))
    threshold = f"all reached, > {VANISHING_FAIL:g}x largest, < {EXPLODING_FAIL:.0e}"
    hint = (findings[0][2] if findings else "every trainable parameter gets a gradient of a "
            "healthy size." + (f" Frozen (requires_grad=False): {', '.join(frozen[:3])}"
                               f"{' ...' if len(frozen) > 3 else ''}." if frozen else ""))
    return CheckResult(name, status, value, threshold, hint, measured=largest,
                       data={"norms": norms, "frozen": frozen, "unreached": unreached,
                             "findings": [what for _, what, _ in findings]})


def _flow_findings(norms: dict[str, float], unreached: list[str],
                   largest: float) -> list[tuple[Status, str, str]]:
    """(status, what, hint) for every problem, the most serious first."""
    findings = []
    if unreached:
        findings.append((Status.FAIL, f"no gradient: {', '.join(unreached)}",
                         f"'{unreached[0]}' gets no gradient: a .detach(), torch.no_grad() or an "
                         "unused module cuts it from the loss (if unused on purpose, set "
                         "requires_grad_(False))."))
    for key, norm in norms.items():
        if not math.isfinite(norm) or norm > EXPLODING_FAIL:
            findings.append((Status.FAIL, f"exploding: {key} {norm:.2g}",
                             f"the gradient of '{key}' explodes ({norm:.2g}): scale down the init, "
                             "normalise activations, or clip gradients."))
        elif norm == 0:
            findings.append((Status.WARN, f"all zero: {key}",
                             f"the gradient of '{key}' is exactly zero: dead units (see activations)"
                             " or a step function (round, sign, floor) between it and the loss."))
        elif norm < VANISHING_FAIL * largest:
            findings.append((Status.FAIL, f"vanishing: {key} {norm:.2g}",
                             f"the gradient of '{key}' vanishes ({norm / largest:.1g}x the largest):"
                             " add normalisation or residual connections, or rescale the init."))
        elif norm > EXPLODING_WARN or norm < VANISHING_WARN * largest:
            size = "large" if norm > EXPLODING_WARN else "small"
            findings.append((Status.WARN, f"{size}: {key} {norm:.2g}",
                             f"the gradient of '{key}' is {size} ({norm:.2g}, the largest is "
                             f"{largest:.2g}): check that layer's init scale."))
    order = {Status.FAIL: 0, Status.WARN: 1}
    return sorted(findings, key=lambda finding: order[finding[0]])
