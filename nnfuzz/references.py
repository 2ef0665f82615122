"""References: second implementations of the model, for the ``disagree`` objective.

The target's ``reference()`` (an exported or hand-optimised copy, say), or a
copy nnfuzz builds: dynamic int8 quantization, or the weights and inputs cast
to float16 or bfloat16. Each is called as the model is; its ``kind`` is what a
reproducer records so that replay rebuilds the same one.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import TargetError, UsageError, first_line
from nnfuzz.config import REFERENCE_KINDS, RUNTIME_KINDS
from nnfuzz.runtimes import build_runtime, runtime_version

#: Layers dynamic int8 quantization replaces.
QUANTIZABLE = (nn.Linear, nn.LSTM, nn.GRU)
CAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Reference:
    """A second implementation: ``run(inputs)`` returns its output."""

    label: str
    run: Callable[[Inputs], Any]
    #: What rebuilds it at replay: one of REFERENCE_KINDS, or "reference()".
    kind: str
    #: The runtime's version, for a reproducer (runtimes only).
    version: str = ""

    @property
    def is_runtime(self) -> bool:
        return self.kind in RUNTIME_KINDS

    def describe(self) -> str:
        """What the start of a run says the reference is."""
        what = {"int8": "a copy with its Linear and recurrent layers dynamically quantized to int8",
                "fp16": "a copy in float16 (weights and float inputs cast)",
                "bf16": "a copy in bfloat16 (weights and float inputs cast)",
                "compile": f"torch.compile of the model ({self.label})",
                "export": "the model's torch.export program",
                "onnx": f"the model exported to ONNX, run by ONNX Runtime {self.version}",
                "reference()": "the target's reference()"}
        return what.get(self.kind, self.label)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A dynamically int8-quantized copy of the model's Linear and recurrent layers.

    torch 2.13 still ships ``torch.ao.quantization.quantize_dynamic`` (marked
    deprecated in favour of torchao); it runs on this CPU build with nothing
    more to install, which is why nnfuzz uses it. This function is the one
    place to swap in torchao's ``quantize_`` when it is removed.
    """
    if not any(isinstance(m, QUANTIZABLE) for m in model.modules()):
        raise UsageError("--reference int8: the model has no nn.Linear, nn.LSTM or nn.GRU layer "
                         "to quantize: use --reference fp16 or bf16, or define reference().")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise UsageError("--reference int8: dynamic quantization runs on the CPU only: "
                         "use --device cpu, or --reference fp16 or bf16.")
    # quantize_dynamic swaps children only: hold the model as a child so that a
    # model which is itself one nn.Linear is quantized too.
    holder = nn.ModuleDict({"model": copy.deepcopy(model)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize = torch.ao.quantization.quantize_dynamic
        quantized = quantize(holder, set(QUANTIZABLE), dtype=torch.qint8)["model"].eval()
    if any(isinstance(m, QUANTIZABLE) and type(m).__module__.startswith("torch.nn.modules")
           for m in quantized.modules()):
        leftover = [type(m).__name__ for m in quantized.modules() if isinstance(m, QUANTIZABLE)]
        warnings.warn(f"--reference int8 left {', '.join(sorted(set(leftover)))} layers in float: "
                      "dynamic quantization does not support them here", stacklevel=2)
    return quantized


def build_reference(model: nn.Module, kind: str, names: Names = None) -> Reference:
    """The copy of ``model`` that ``--reference kind`` names, called as the model is."""
    if kind == "int8":
        quantized = quantize_int8(model)
        return Reference("int8", lambda inputs: call(quantized, inputs, names), kind)
    if kind not in CAST_DTYPES:
        raise UsageError(f"--reference {kind!r} is unknown: choose {', '.join(REFERENCE_KINDS)}.")
    dtype = CAST_DTYPES[kind]
    cast = copy.deepcopy(model).to(dtype).eval()

    def run(inputs: Inputs) -> Any:
        return call(cast, tuple(t.to(dtype) if t.dtype.is_floating_point else t for t in inputs),
                    names)

    return Reference(kind, run, kind)


def user_reference(factory: Callable[[], Any], origin: str, names: Names = None) -> Reference:
    """The target's ``reference()``: a module or any callable taking the model's inputs."""
    try:
        implementation = factory()
    except Exception as error:  # noqa: BLE001 - the target's bug
        raise TargetError(f"{origin}: reference() raised {type(error).__name__}: "
                          f"{first_line(error)}") from None
    if not callable(implementation):
        raise TargetError(f"{origin}: reference() returned {type(implementation).__name__}: "
                          "return a module or a callable taking the same inputs as the model.")
    if isinstance(implementation, nn.Module):
        implementation.eval()
    return Reference("reference", lambda inputs: call(implementation, inputs, names),
                     "reference()")


def reference_for(kind: str | None, model: nn.Module, factory: Callable[[], Any] | None,
                  origin: str, names: Names = None, example: Inputs | None = None,
                  compile_mode: str | None = None) -> Reference | None:
    """The reference of ``kind``: "reference()" (the target's), a copy (int8, fp16, bf16),
    a runtime (compile, export, onnx: traced on ``example``, a few seeds), or none."""
    if not kind:
        return None
    if kind == "reference()":
        if factory is None:
            raise UsageError(f"{origin} defines no reference(): define it, or use "
                             f"--reference {', '.join(REFERENCE_KINDS)}.")
        return user_reference(factory, origin, names)
    if kind in RUNTIME_KINDS:
        if example is None:
            raise UsageError(f"--reference {kind} traces the model on its seeds: define "
                             f"seeds() in {origin}.")
        label = f"{kind} ({compile_mode})" if kind == "compile" and compile_mode else kind
        return Reference(label, build_runtime(kind, model, example, names, compile_mode), kind,
                         runtime_version(kind))
    return build_reference(model, kind, names)


def model_label(model: nn.Module) -> str:
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
             torch.float64: "fp64"}
    for parameter in model.parameters():
        return names.get(parameter.dtype, "model")
    return "model"
