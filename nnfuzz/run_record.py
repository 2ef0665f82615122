"""run.json: what ran in an output folder, and the totals of every run of it.

One writer (:func:`run_record`, through the Campaign) and the readers of its keys
(resume, ``nnfuzz report``, ``corpus minimize``, the pytest plugin) are here, so that
its format is written down once: :class:`RunRecord` and :class:`RunEntry` are its shape
(the README's *Output folder* describes it to users). Records written by older versions
may lack keys; the readers here tolerate that, and nothing outside reads a key by string.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch

from nnfuzz.config import FuzzConfig, StopReason
from nnfuzz.drivers.engine import Resume
from nnfuzz.version import __version__, versions

if TYPE_CHECKING:
    from nnfuzz.status import Snapshot
    from nnfuzz.target import Target

#: run.json's stop_reason while the run is still going (or was killed).
RUNNING = "running"


class WhatRan(TypedDict, total=False):
    """What a run was, as both run.json's top level (the latest run) and each entry say."""

    nnfuzz: str
    target_sha256: str
    seeds_sha256: str | None
    run_seed: int
    start_time: str
    end_time: str | None
    stop_reason: str
    threshold: float | None
    coverage_layers: list[str]
    #: Which engine ran: "run" (the fuzz loop) or "train".
    engine: str


class RunEntry(WhatRan, total=False):
    """One run of the folder, in run.json's ``runs`` (oldest first)."""

    execs: int
    elapsed_s: float
    new_failures: int
    hits: dict[str, int]
    workers: int


class RunRecord(WhatRan, total=False):
    """run.json: the latest run's facts at the top level, totals, and every run's entry."""

    torch: str
    numpy: str
    faiss: str
    python: str
    device: str
    torch_threads: int
    #: The fuzz loop's batch size: --batch-size, or what auto chose (nnfuzz.batch_sizing).
    batch_size: int
    options: dict[str, Any]
    target: str | None
    totals: dict[str, Any]
    runs: list[RunEntry]


def run_record(*, target: "Target", config: FuzzConfig, device: str, threshold: float | None,
               started_at: datetime, reason: StopReason | None, elapsed_s: float, execs: int,
               failures: int, hits: Counter[str], known: int, earlier: list[RunEntry],
               snapshot: "Snapshot", workers: int | None = None,
               coverage_layers: list[str] | tuple[str, ...] = (),
               engine: dict[str, object] | None = None) -> RunRecord:
    """run.json (the README's *Output folder*): what ran, and totals across every run of the
    folder; ``engine``: what the engine asked to record besides (its name, its options)."""
    engine = {"engine": "run", **(engine or {})}
    what_ran = {
        "engine": engine["engine"],
        "target_sha256": target.sha256,
        "seeds_sha256": target.seeds_sha256,
        "run_seed": config.seed,
        "start_time": started_at.isoformat(),
        "end_time": datetime.now(timezone.utc).isoformat() if reason else None,
        "stop_reason": reason.describe() if reason else RUNNING,
    }
    this_run: RunEntry = {"nnfuzz": __version__, **what_ran,  # type: ignore[typeddict-item]
                          "execs": execs, "threshold": threshold,
                          "coverage_layers": list(coverage_layers),
                          "elapsed_s": round(elapsed_s, 3), "new_failures": failures,
                          "hits": dict(hits)}
    if workers is not None:
        this_run["workers"] = workers
    every_hit = Counter(hits)
    for run in earlier:
        every_hit.update(run.get("hits") or {})
    totals = {key: value for key, value in snapshot.record().items() if key != "run"}
    return {  # type: ignore[typeddict-item]
        **versions(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "options": asdict(config),
        "target": str(target.path) if target.path else None,
        "threshold": threshold,
        "coverage_layers": list(coverage_layers),
        **engine,
        **what_ran,
        "totals": {**totals, "runs": len(earlier) + 1, "new_failures": failures,
                   "known_failures": known, "hits": dict(every_hit)},
        "runs": [*earlier, this_run],
    }


def read_run_json(path: Path) -> RunRecord:
    """run.json as written by run_record; ValueError or OSError when it cannot be read.
    Every reader of run.json goes through here."""
    record = json.loads(path.read_text())
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return record  # type: ignore[return-value]


def runs_of(record: RunRecord) -> list[RunEntry]:
    """The runs a record holds, oldest first (a record without a history is one run)."""
    runs = record.get("runs")
    if isinstance(runs, list):
        return [run for run in runs if isinstance(run, dict)]
    return [record]  # type: ignore[list-item]


def summed(runs: list[RunEntry], key: str) -> float:
    """The sum of a number over runs (run.json's history)."""
    return float(sum(r.get(key) or 0 for r in runs  # type: ignore[misc]
                     if isinstance(r.get(key, 0), (int, float))))


def resume_point(runs: list[RunEntry]) -> Resume | None:
    """Where the last of ``runs`` left its coverage, for a resumed engine; None without one."""
    if not runs:
        return None
    last = runs[-1]
    threshold = last.get("threshold")
    layers = last.get("coverage_layers") or []
    if not isinstance(threshold, (int, float)) or not isinstance(layers, list):
        return None
    return Resume(float(threshold), tuple(str(layer) for layer in layers))


def coverage_settings(folder: Path) -> tuple[float | None, tuple[str, ...]]:
    """The coverage threshold and layers of the run whose output folder holds ``folder``
    (OUT/corpus): (None, ()) when there is no readable run.json beside it."""
    try:
        record = read_run_json(folder.parent / "run.json")
    except (OSError, ValueError):
        return None, ()
    threshold = record.get("threshold")
    layers = record.get("coverage_layers") or (record.get("options") or {}).get("layers") or ()
    return (float(threshold) if isinstance(threshold, (int, float)) else None,
            tuple(str(layer) for layer in layers) if isinstance(layers, (list, tuple)) else ())


def recorded_batch_size(folder: Path) -> int | None:
    """The batch size the last run of the output folder holding ``folder`` (OUT/corpus) ran
    with (its engine's ``batch_size``, top level): what --batch-size auto reuses on resuming."""
    try:
        size = read_run_json(folder.parent / "run.json").get("batch_size")
    except (OSError, ValueError):
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


def recorded_target(record: RunRecord) -> tuple[str | None, str]:
    """The target file a record's runs fuzzed, as recorded (a path, or None), and its sha256."""
    path = record.get("target")
    return (path if isinstance(path, str) else None), str(record.get("target_sha256") or "")
