"""Running the doctor's checks on a target, and the record of what ran.

``diagnose`` runs each check on copies of the model and gathers their
results; ``write_record`` keeps them in ``OUT/doctor.json`` with what ran
(versions, options, the target's and the seeds' hashes), and the verdicts of
the runs before it, so that a model's health can be followed over time.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from nnfuzz.doctor.activations import activations
from nnfuzz.doctor.gradients import gradcheck, gradient_flow
from nnfuzz.doctor.loss import loss_sanity
from nnfuzz.doctor.result import CheckResult, Status
from nnfuzz.doctor.subject import DoctorConfig, Subject, examine
from nnfuzz.doctor.training import initial_loss, overfit, update_size
from nnfuzz.errors import UsageError
from nnfuzz.execution import model_device
from nnfuzz.storage import atomic_write, ensure_folder
from nnfuzz.target import Target

#: The checks in the order they run and are reported.
CHECKS: dict[str, Callable[..., CheckResult]] = {
    "initial-loss": initial_loss,
    "overfit": overfit,
    "gradcheck": gradcheck,
    "gradient-flow": gradient_flow,
    "activations": activations,
    "update-size": update_size,
    "loss-sanity": loss_sanity,
}
RECORD_NAME = "doctor.json"
#: Up to this many parameters, a model's operations on a few examples are too
#: small to share among threads (see _threads_for).
SMALL_MODEL_PARAMETERS = 1_000_000


@dataclass(frozen=True)
class Diagnosis:
    target: Target
    config: DoctorConfig
    results: list[CheckResult]
    #: Seeds the checks ran on (the first ``batch_size``).
    seeds: int
    device: str
    started_at: datetime
    elapsed_s: float

    @property
    def exit_code(self) -> int:
        """1 when a check failed, else 0 (warnings and skips do not fail)."""
        return 1 if any(result.status is Status.FAIL for result in self.results) else 0

    def counts(self) -> dict[str, int]:
        return {status.value: sum(r.status is status for r in self.results) for status in Status}

    def record(self) -> dict[str, Any]:
        """What ran and what every check found, JSON-ready."""
        from nnfuzz.version import versions

        return {
            **versions(),
            "command": "doctor",
            "options": asdict(self.config),
            "target": str(self.target.path) if self.target.path else None,
            "target_sha256": self.target.sha256,
            "seeds_sha256": self.target.seeds_sha256,
            "seeds": self.seeds,
            "device": self.device,
            "start_time": self.started_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": self.counts(),
            "exit_code": self.exit_code,
            "checks": [result.record() for result in self.results],
        }


def diagnose(target: Target, config: DoctorConfig = DoctorConfig()) -> Diagnosis:
    """Run the checks (all, or ``config.checks``) on copies of the target's model."""
    names = list(config.checks or CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise UsageError(f"--check {unknown[0]!r} is unknown: choose from {', '.join(CHECKS)}.")
    started_at, started = datetime.now(timezone.utc), time.monotonic()
    with _threads_for(target.model):
        subject = examine(target, config)
        results = [_timed(CHECKS[name], subject) for name in CHECKS if name in names]
    return Diagnosis(target, config, results, subject.size, str(model_device(target.model)),
                     started_at, time.monotonic() - started)


def _timed(check: Callable[[Subject], CheckResult], subject: Subject) -> CheckResult:
    """The check's result, with how long it took: the table says where the time went."""
    started = time.monotonic()
    result = check(subject)
    return replace(result, seconds=time.monotonic() - started)


@contextlib.contextmanager
def _threads_for(model: torch.nn.Module) -> Iterator[None]:
    """One intra-op thread for a small model, the previous count after.

    The checks run thousands of operations on a few examples; split over threads
    they gain nothing, and on a busy machine every split waits for a core: on 2
    busy cores one float64 cross-entropy of 4 examples took 7 ms with 2 threads
    and 0.06 ms with one (the doctor on examples/doctor_digits.py: 29 s and 3.7 s).
    """
    previous = torch.get_num_threads()
    small = sum(p.numel() for p in model.parameters()) <= SMALL_MODEL_PARAMETERS
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(previous)


def write_record(diagnosis: Diagnosis, folder: Path) -> Path:
    """``folder/doctor.json``: this run in full, and one line of verdicts for every run so far."""
    ensure_folder(folder)
    path = folder / RECORD_NAME
    record = diagnosis.record()
    record["runs"] = [*_earlier_runs(path), _verdicts(record)]
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())
    return path


def _verdicts(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("start_time", "nnfuzz", "torch", "target_sha256", "seeds_sha256", "exit_code")
    return {**{key: record.get(key) for key in keys},
            "checks": {check["check"]: check["status"] for check in record["checks"]}}


def _earlier_runs(path: Path) -> list[dict[str, Any]]:
    """The verdicts of earlier runs in this folder; an unreadable record starts afresh."""
    try:
        runs = json.loads(path.read_text()).get("runs")
    except (OSError, ValueError, AttributeError):
        return []
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []
