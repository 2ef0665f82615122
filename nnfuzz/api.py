"""The Python API: ``nnfuzz.fuzz`` for a model in memory, ``nnfuzz.fuzz_target`` for a
target file, each run by the driver its options choose (nnfuzz.campaign)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from nnfuzz.drivers.engine import EngineFactory
from nnfuzz.drivers.in_process import run_in_process
from nnfuzz.config import FuzzConfig, FuzzResult
from nnfuzz.errors import UsageError
from nnfuzz.status import Reporter
from nnfuzz.target import Target, in_memory
from nnfuzz.tracking import Tracker


def fuzz(model: torch.nn.Module, seeds: object = None, *, out: str | Path | None = None,
         bounds: object = None, inputs: object = None, targets: torch.Tensor | None = None,
         loss: Callable[..., torch.Tensor] | None = None, reference: Any = None,
         objectives: Any = None, corpus: str | Path | None = None,
         reporter: Reporter | None = None, workers: int = 1, ray: str | None = None,
         **options: Any) -> FuzzResult:
    """Fuzz ``model`` from ``seeds`` and return what was found.

    The arguments mirror the target file (the README's "The target file"): ``seeds`` (a tensor, a
    tuple, or a dict by keyword), ``bounds``, ``inputs`` (the kinds of
    ``INPUTS``), ``targets``, ``loss(output, target)``, and ``reference`` (a module or callable, or one
    of "int8", "fp16", "bf16"). ``objectives`` lists objective names and/or
    callables ``(inputs, output) -> BoolTensor (N,)``; default: every
    objective available. ``options`` are the fields of :class:`FuzzConfig`
    (``max_time``, ``runs``, ``seed``, ``radius``, ...). With neither
    ``max_time`` nor ``runs`` the run goes on until interrupted. Unlike ``nnfuzz run``,
    it stops at the first failure unless ``stop_on_failure=False``. ``workers`` and
    ``ray`` run it in several processes, as ``--workers`` and ``--ray`` do (they need a
    target file: use :func:`fuzz_target` with ``load_target``).
    """
    # A test wants the first failure, not the rest of max_time (nnfuzz run keeps its own
    # default, since a nightly job wants every failure of its budget).
    options.setdefault("stop_on_failure", True)
    unknown = set(options) - set(FuzzConfig.__dataclass_fields__)
    if unknown:
        raise UsageError(f"fuzz() got unknown option {sorted(unknown)[0]!r}: choose from "
                         f"{', '.join(FuzzConfig.__dataclass_fields__)}.")
    chosen = [objectives] if isinstance(objectives, str) or callable(objectives) else objectives
    checks = [o for o in chosen or [] if callable(o)]
    if isinstance(reference, str):
        options["reference"] = reference
    target = in_memory(model, seeds, bounds=bounds, inputs=inputs, targets=targets, loss=loss,
                       reference=(lambda: reference) if reference is not None
                       and not isinstance(reference, str) else None,
                       objectives=checks)
    names = [o if isinstance(o, str) else o.__name__ for o in chosen] if chosen else None
    if isinstance(options.get("layers"), str):
        options["layers"] = (options["layers"],)
    config = FuzzConfig(objectives=tuple(names) if names else None,
                        **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    return fuzz_target(target, config, out=out, corpus=corpus, reporter=reporter,
                       workers=workers, ray=ray)


def fuzz_target(target: Target, config: FuzzConfig, *, out: str | Path | None = None,
                corpus: str | Path | None = None, reporter: Reporter | None = None,
                workers: int = 1, ray: str | None = None, device: str | None = None,
                engine: EngineFactory | None = None,
                tracker: Tracker | None = None) -> FuzzResult:
    """Fuzz a loaded target file: what ``nnfuzz run`` does (``nnfuzz train`` with the
    training ``engine``). One process, ``workers`` processes on this machine, or ``workers``
    Ray actors (``ray``: auto, an address, or local); each driver feeds one Campaign, so the
    output folder is the same. ``tracker`` (nnfuzz.tracking) is told the run once, by the
    Campaign, whatever the driver."""
    chosen: dict[str, Any] = {"tracker": tracker}
    if engine is not None:
        chosen["engine"] = engine
    out_path = Path(out) if out else None
    corpus_path = Path(corpus) if corpus else None
    if ray is not None:
        from nnfuzz.drivers.ray_actors import RayPool

        return RayPool(target, config, _needs_out(out_path), corpus_path, workers, ray,
                       reporter or Reporter(), **chosen).run()
    if workers > 1:
        from nnfuzz.drivers.processes import WorkerPool

        return WorkerPool(target, config, _needs_out(out_path), corpus_path, workers, device,
                          reporter or Reporter(), **chosen).run()
    return run_in_process(target, config, out=out_path, corpus=corpus_path, reporter=reporter,
                          **chosen)


def _needs_out(out: Path | None) -> Path:
    if out is None:
        raise UsageError("workers share an output folder: give out=... (--out).")
    return out
