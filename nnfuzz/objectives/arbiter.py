"""The float64 arbiter of a disagreement: which side, the model or its reference, is off.

A disagreement says that two implementations differ, not which one is wrong. The
failing input is run once more through a float64 copy of the model (float inputs
cast to float64): for class scores, the side whose argmax float64 shares at the
first position where they differ is right; for other outputs, the side with the
smaller largest distance to float64. The verdict ends the failure's detail and is
its ``arbiter`` metadata; the side that is off is part of the signature.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nnfuzz import hooks
from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import first_line
from nnfuzz.reading import primary_output

#: The side that is off, for the signature: float64 agrees with the model, with the
#: reference, with neither, or could not run.
REFERENCE_OFF, MODEL_OFF, BOTH_OFF, UNARBITRATED = ("reference-off", "model-off", "both-off",
                                                    "unarbitrated")


class Arbiter:
    """A float64 copy of the model, made at the first disagreement and kept (the fuzz loop
    never changes the model's weights)."""

    def __init__(self, model: nn.Module, names: Names, model_label: str,
                 reference_label: str) -> None:
        self.model, self.names = model, names
        self.model_label, self.reference_label = model_label, reference_label
        self._copy: nn.Module | None = None
        self._error = ""

    def _float64(self) -> nn.Module | None:
        if self._copy is None and not self._error:
            try:
                self._copy = copy.deepcopy(self.model).double()
            except Exception as error:  # noqa: BLE001 - said in the verdict
                self._error = f"{type(error).__name__}: {first_line(error)[:160]}"
        return self._copy

    def judge(self, inputs: Inputs, ours: torch.Tensor, theirs: torch.Tensor,
              real: torch.Tensor | None) -> tuple[str, str]:
        """(the verdict the failure line ends with, the side that is off) on one example:
        ``ours``/``theirs`` its outputs (1, ...), ``real`` its compared positions (1, L)."""
        model = self._float64()
        if model is None:
            return f"float64 could not run: {self._error}", UNARBITRATED
        cast = tuple(t.double() if t.is_floating_point() else t for t in inputs)
        try:
            with torch.no_grad(), hooks.suspended():
                exact = primary_output(call(model, cast, self.names))
        except Exception as error:  # noqa: BLE001 - an op without a float64 kernel, say
            return (f"float64 could not run: {type(error).__name__}: {first_line(error)[:160]}",
                    UNARBITRATED)
        if exact is None or exact.shape != ours.shape:
            shape = None if exact is None else tuple(exact.shape)
            return f"float64 could not run: its output has shape {shape}", UNARBITRATED
        exact = exact.to(ours.device).double()
        if not torch.isfinite(exact).all():
            return "float64 could not run: its output is not finite", UNARBITRATED
        if ours.dim() >= 2 and ours.shape[-1] > 1:
            return self._classes(ours, theirs, exact, real)
        return self._values(ours.double(), theirs.double(), exact, real)

    def _classes(self, ours: torch.Tensor, theirs: torch.Tensor, exact: torch.Tensor,
                 real: torch.Tensor | None) -> tuple[str, str]:
        mine, other, truth = (t.argmax(-1).reshape(-1) for t in (ours, theirs, exact))
        differ = mine != other
        if real is not None and real.numel() == differ.numel():
            differ &= real.reshape(-1).to(differ.device)
        where = int(differ.nonzero()[0]) if differ.any() else 0
        if truth[where] == mine[where]:
            return f"float64 agrees with {self.model_label}", REFERENCE_OFF
        if truth[where] == other[where]:
            return f"float64 agrees with {self.reference_label}", MODEL_OFF
        return f"float64 predicts {int(truth[where])}, agreeing with neither", BOTH_OFF

    def _values(self, ours: torch.Tensor, theirs: torch.Tensor, exact: torch.Tensor,
                real: torch.Tensor | None) -> tuple[str, str]:
        keep = torch.ones(ours.numel(), dtype=torch.bool, device=ours.device)
        if real is not None and real.numel() and ours.numel() % real.numel() == 0:
            keep = real.reshape(1, -1).repeat_interleave(ours.numel() // real.numel(), 1)
            keep = keep.reshape(-1).to(ours.device)
        mine = float((ours - exact).abs().reshape(-1)[keep].max())
        other = float((theirs - exact).abs().reshape(-1)[keep].max())
        if mine <= other:
            return (f"float64 is closer to {self.model_label} (largest distance {mine:.3g}; "
                    f"{self.reference_label} {other:.3g})", REFERENCE_OFF)
        return (f"float64 is closer to {self.reference_label} (largest distance {other:.3g}; "
                f"{self.model_label} {mine:.3g})", MODEL_OFF)
