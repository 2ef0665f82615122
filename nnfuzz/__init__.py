"""nnfuzz: a coverage-guided fuzzer for PyTorch models.

    import nnfuzz
    result = nnfuzz.fuzz(model, seeds, objectives=["nonfinite"], max_time=30, seed=0)
    assert not result.failures, result.failures[0].describe()

The target-file contract, the commands and the output folder are described
in the README.

The names below are imported on first use (PEP 562), not with the package:
``import nnfuzz.entry``, the command's first line, must not wait seconds for
torch before it can handle Ctrl-C.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_HOMES = {
    "CorpusError": "nnfuzz.errors", "NnfuzzError": "nnfuzz.errors", "OutputError": "nnfuzz.errors",
    "ReproducerError": "nnfuzz.errors", "TargetError": "nnfuzz.errors",
    "UsageError": "nnfuzz.errors",
    "FuzzConfig": "nnfuzz.config", "FuzzResult": "nnfuzz.config", "StopReason": "nnfuzz.config",
    "Continuous": "nnfuzz.kinds", "Flags": "nnfuzz.kinds", "Image": "nnfuzz.kinds",
    "Mask": "nnfuzz.kinds", "Tokens": "nnfuzz.kinds",
    "fuzz": "nnfuzz.api", "fuzz_target": "nnfuzz.api",
    "Finding": "nnfuzz.objectives", "Objective": "nnfuzz.objectives",
    "Failure": "nnfuzz.reproducer", "load_failure": "nnfuzz.reproducer",
    "Target": "nnfuzz.target", "load_target": "nnfuzz.target",
    "__version__": "nnfuzz.version",
}

#: Modules reached as attributes: ``nnfuzz.strategies.inputs(...)`` after ``import nnfuzz``.
_SUBMODULES = ("strategies",)

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"nnfuzz.{name}")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nnfuzz' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES) | set(_SUBMODULES))


if TYPE_CHECKING:  # what type checkers and editors see
    from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
    from nnfuzz.errors import (CorpusError, NnfuzzError, OutputError, ReproducerError,
                               TargetError, UsageError)
    from nnfuzz.kinds import Continuous, Flags, Image, Mask, Tokens
    from nnfuzz.api import fuzz, fuzz_target
    from nnfuzz.objectives import Finding, Objective
    from nnfuzz.reproducer import Failure, load_failure
    from nnfuzz.target import Target, load_target
    from nnfuzz.version import __version__
