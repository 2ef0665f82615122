"""What one check of ``nnfuzz doctor`` found: a status, a measured value held
against a threshold, and a one-line hint that says what to do about it."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    """A check's verdict. Only ``FAIL`` makes ``nnfuzz doctor`` exit 1."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    #: The check could not run on this target (no loss, no fresh model, ...):
    #: the hint says what to define.
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    #: The measured value, as a person reads it.
    value: str
    #: What the value is held against.
    threshold: str
    #: One line: what the value means and what to do next.
    hint: str
    #: The headline number, for comparing runs over time (None when skipped).
    measured: float | None = None
    #: JSON-ready details (per-layer numbers, curves) that the plots draw.
    data: dict[str, Any] = field(default_factory=dict)
    #: How long the check took (set by diagnose).
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """JSON-ready, and strict JSON: a NaN or infinite number becomes null."""
        return _finite({"check": self.check, "status": self.status.value, "value": self.value,
                        "threshold": self.threshold, "hint": self.hint,
                        "measured": self.measured, "seconds": round(self.seconds, 3),
                        "data": self.data})


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def skipped(check: str, why: str, hint: str) -> CheckResult:
    return CheckResult(check, Status.SKIP, why, "-", hint)


def worst(statuses: list[Status]) -> Status:
    """The most serious of several findings of one check (pass when there are none)."""
    for status in (Status.FAIL, Status.WARN):
        if status in statuses:
            return status
    return Status.PASS


def graded(value: float, warn_above: float, fail_above: float) -> Status:
    """PASS up to ``warn_above``, WARN up to ``fail_above``, FAIL beyond (NaN fails)."""
    if not value <= fail_above:
        return Status.FAIL
    return Status.WARN if value > warn_above else Status.PASS
