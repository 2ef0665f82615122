"""nnfuzz: a coverage-guided fuzzer for PyTorch models.

    import nnfuzz
    result = nnfuzz.fuzz(model, seeds, objectives=["nonfinite"], max_time=30, seed=0)
    assert not result.failures, result.failures[0].describe()

The target-file contract, the commands and the output folder are described
in the README and in DESIGN.md.
"""

from nnfuzz.errors import (CorpusError, NnfuzzError, OutputError, ReproducerError, TargetError,
                           UsageError)
from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.kinds import Continuous, Flags, Image, Mask, Tokens
from nnfuzz.loop import fuzz, fuzz_target
from nnfuzz.objectives import Finding, Objective
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.target import Target, load_target
from nnfuzz.version import __version__

__all__ = [
    "Continuous", "CorpusError", "Failure", "Finding", "Flags", "FuzzConfig", "FuzzResult",
    "Image", "Mask", "NnfuzzError", "Objective", "OutputError", "ReproducerError", "StopReason",
    "Target", "TargetError", "Tokens", "UsageError", "__version__", "fuzz", "fuzz_target",
    "load_failure", "load_target",
]
