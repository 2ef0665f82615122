"""References: second implementations of the model, for the ``disagree`` objective.

The target's ``reference()`` (an exported or hand-optimised copy, say), or a
copy nnfuzz builds: dynamic int8 quantization, or the weights and inputs cast
to float16 or bfloat16; or the model itself run as users run it, under
``torch.autocast`` or another execution path's setting (the MHA fast path off,
SDPA's math backend, deterministic algorithms, TF32 off). Each is called as the
model is; its ``kind`` is what a reproducer records so that replay rebuilds the
same one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import TargetError, UsageError, first_line
from nnfuzz.config import AUTOCAST_KINDS, PATH_KINDS, REFERENCE_KINDS, RUNTIME_KINDS
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
                "autocast-bf16": "the model under torch.autocast(dtype=torch.bfloat16)",
                "autocast-fp16": "the model under torch.autocast(dtype=torch.float16)",
                "fastpath-off": "the model with torch.backends.mha.set_fastpath_enabled(False)",
                "sdpa-math": "the model with SDPA forced to its math backend",
                "deterministic": "the model with torch.use_deterministic_algorithms(True)",
                "no-tf32": "the model with TF32 off (matmul and cuDNN)",
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


def build_reference(model: nn.Module, kind: str, names: Names = None,
                    example: Inputs | None = None) -> Reference:
    """The copy of ``model`` that ``--reference kind`` names, called as the model is."""
    if kind == "int8":
        quantized = quantize_int8(model)
        return Reference("int8", lambda inputs: call(quantized, inputs, names), kind)
    if kind in AUTOCAST_KINDS or kind in PATH_KINDS:
        return under_setting(model, kind, names, example)
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
    the model under a setting (autocast-bf16, fastpath-off, ...: on ``example``, whether it
    takes that path), a runtime (compile, export, onnx: traced on ``example``, a few seeds), or none."""
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
    return build_reference(model, kind, names, example)


# --- the model under a setting ----------------------------------------------------------

#: The modules whose forward has the MHA fast path (torch.backends.mha), and those that call
#: scaled_dot_product_attention (MultiheadAttention with need_weights=False, as the
#: transformer layers call it).
FASTPATH_MODULES = (nn.MultiheadAttention, nn.TransformerEncoderLayer)
ATTENTION_MODULES = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def under_setting(model: nn.Module, kind: str, names: Names = None,
                  example: Inputs | None = None) -> Reference:
    """The model itself, run under ``kind``'s setting (autocast, a backend flag).

    A deep copy runs, so that the executor's coverage hook (which knows the original's
    modules) is not fed by it; the setting is entered around each call and restored after,
    however the call ends, so the plain judged pass of the model is never under it. A
    setting the model's device lacks, or a path the model never takes, is a UsageError.
    """
    device = next((t.device for t in list(model.parameters()) + list(model.buffers())),
                  torch.device("cpu"))
    setting = _setting(kind, device)
    if kind in ("fastpath-off", "sdpa-math"):
        _check_takes_path(model, kind, names, example)
    twin = copy.deepcopy(model).eval()

    def run(inputs: Inputs) -> Any:
        with setting():
            return call(twin, inputs, names)

    return Reference(kind, run, kind)


def _setting(kind: str, device: torch.device) -> Callable[[], Any]:
    """A factory of the context manager that enters ``kind``'s setting on ``device``."""
    if kind in AUTOCAST_KINDS:
        dtype = CAST_DTYPES[kind.split("-")[1]]
        _check_autocast(kind, device.type, dtype)
        return lambda: torch.autocast(device.type, dtype=dtype)
    if kind == "fastpath-off":
        return lambda: _flag(torch.backends.mha.get_fastpath_enabled,
                             torch.backends.mha.set_fastpath_enabled, False)
    if kind == "sdpa-math":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return lambda: sdpa_kernel(SDPBackend.MATH)
    if kind == "deterministic":
        if device.type == "cuda" and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
            raise UsageError("--reference deterministic on CUDA needs cuBLAS's deterministic "
                             "workspace: set CUBLAS_WORKSPACE_CONFIG=:4096:8 before running.")
        return _deterministic
    if kind == "no-tf32":
        if device.type != "cuda":
            raise UsageError(f"--reference no-tf32 needs a CUDA device (TF32 is a CUDA setting); "
                             f"the model is on {device.type}: use --device cuda.")
        return _no_tf32
    raise UsageError(f"--reference {kind!r} is unknown: choose {', '.join(REFERENCE_KINDS)}.")


def _check_autocast(kind: str, device_type: str, dtype: torch.dtype) -> None:
    """A clear error where autocast lacks ``dtype`` on the device (CPU autocast would only
    warn and run in float32, a silent pass)."""
    problem = ""
    if not torch.amp.is_autocast_available(device_type):
        problem = f"torch.autocast is not available on {device_type}"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with torch.autocast(device_type, dtype=dtype):
                    pass
            except Exception as error:  # noqa: BLE001 - said as the UsageError
                problem = first_line(error)
        problem = problem or next((str(w.message).splitlines()[0] for w in caught
                                   if "not supported" in str(w.message)), "")
    if problem:
        raise UsageError(f"--reference {kind}: {dtype} autocast is not supported on "
                         f"{device_type} ({problem}).")


@contextlib.contextmanager
def _flag(get: Callable[[], bool], put: Callable[[bool], None], value: bool) -> Iterator[None]:
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before, warn_only = (torch.are_deterministic_algorithms_enabled(),
                         torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32, cudnn.allow_tf32 = False, False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def _check_takes_path(model: nn.Module, kind: str, names: Names,
                      example: Inputs | None) -> None:
    """A UsageError unless the model takes the path ``kind`` changes.

    fastpath-off: the model holds an nn.MultiheadAttention or nn.TransformerEncoderLayer
    (the modules with a fast path). sdpa-math: it holds a module that calls SDPA, or, run
    once on the seeds (a deep copy, in no_grad) under a TorchFunctionMode, it calls
    F.scaled_dot_product_attention itself (Hugging Face attention does). The modules are
    checked first because they are certain; the seeds' run catches functional calls,
    which a module check cannot see, and only sees the branches the seeds take, so it is
    the fallback, not the rule.
    """
    if kind == "fastpath-off":
        if not any(isinstance(m, FASTPATH_MODULES) for m in model.modules()):
            raise UsageError("--reference fastpath-off: the model has no nn.MultiheadAttention "
                             "or nn.TransformerEncoderLayer, so it never takes the MHA fast path.")
        return
    if any(isinstance(m, ATTENTION_MODULES) for m in model.modules()):
        return
    if example is None or not _calls_sdpa(model, example, names):
        seen = "" if example is None else " and its seeds never call it"
        raise UsageError(f"--reference sdpa-math: the model has no nn.MultiheadAttention or "
                         f"transformer layer{seen}, so it never runs "
                         f"F.scaled_dot_product_attention{' (define seeds() to let nnfuzz see it called)' if example is None else ''}.")


def _calls_sdpa(model: nn.Module, example: Inputs, names: Names) -> bool:
    """Whether the model calls F.scaled_dot_product_attention on ``example``."""
    from torch.overrides import TorchFunctionMode

    sdpa = torch.nn.functional.scaled_dot_product_attention
    seen: list[bool] = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            if func is sdpa:
                seen.append(True)
            return func(*args, **(kwargs or {}))

    twin = copy.deepcopy(model).eval()
    try:
        with torch.no_grad(), Watch():
            call(twin, example, names)
    except Exception:  # noqa: BLE001 - a model that raises on its seeds: judged elsewhere
        pass
    return bool(seen)


def model_label(model: nn.Module) -> str:
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
             torch.float64: "fp64"}
    for parameter in model.parameters():
        return names.get(parameter.dtype, "model")
    return "model"
