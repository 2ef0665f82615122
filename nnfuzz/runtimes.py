"""Deployment runtimes as references: torch.compile, torch.export, ONNX Runtime.

Users ship these, not the eager model, and their conversions are where many
reported model bugs live (an op lowered differently, a fused kernel with other
rounding, a shape the exported program no longer accepts). Each is built once,
at the start of a run, from the model and a few of its seeds, with the batch
dimension dynamic; a model that cannot be converted is one error naming the
converter's own message. ``disagree`` then compares the model with it, and an
input the runtime raises on (and the eager model accepts) is a disagreement
too: ``disagree:raised:<exception type>``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from nnfuzz.domain import Inputs, Names, arguments
from nnfuzz.config import COMPILE_MODES, RUNTIME_KINDS
from nnfuzz.errors import UsageError, first_line

ONNX_EXTRA = "pip install 'nnfuzz[onnx]'"


def runtime_version(kind: str) -> str:
    """What a reproducer records of the runtime it disagreed with."""
    if kind == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}"
    return f"torch {torch.__version__}"


def build_runtime(kind: str, model: nn.Module, example: Inputs, names: Names,
                  compile_mode: str | None = None) -> Callable[[Inputs], Any]:
    """The model converted by the runtime ``kind``, called as the model is (positional
    inputs, or by name). ``example``: a few real inputs (the seeds) to trace with."""
    if kind == "compile":
        return _compiled(model, names, compile_mode or "default")
    if kind == "export":
        return _exported(model, example, names)
    if kind == "onnx":
        return _onnx(model, example, names)
    raise UsageError(f"--reference {kind!r} is not a runtime: choose {', '.join(RUNTIME_KINDS)}.")


def _compiled(model: nn.Module, names: Names, mode: str) -> Callable[[Inputs], Any]:
    if mode not in COMPILE_MODES:
        raise UsageError(f"--compile-mode {mode!r} is unknown: choose {', '.join(COMPILE_MODES)}.")
    compiled = torch.compile(model, mode=None if mode == "default" else mode, dynamic=True)

    def run(inputs: Inputs) -> Any:
        with _quiet():
            return _call(compiled, inputs, names)

    return run


def _exported(model: nn.Module, example: Inputs, names: Names) -> Callable[[Inputs], Any]:
    try:
        program = _export(model, example, names, dynamic=True)
    except _BatchSpecialized:
        return _one_at_a_time(_exported(model, _first(example), names))
    except Exception as error:  # noqa: BLE001 - the exporter's own message names the op
        raise UsageError(_conversion_error("torch.export", error)) from None
    module = program.module()

    def run(inputs: Inputs) -> Any:
        return _call(module, inputs, names)

    return run


def _onnx(model: nn.Module, example: Inputs, names: Names) -> Callable[[Inputs], Any]:
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(f"--reference onnx needs onnx and onnxruntime, which are not "
                         f"installed: {ONNX_EXTRA}") from None
    args, kwargs = _split(example, names)
    try:
        with _quiet():
            program = torch.onnx.export(model, args, kwargs=kwargs or None, dynamo=True,
                                        dynamic_shapes=_batch_dims(example, names)
                                        if len(example[0]) > 1 else None,
                                        verbose=False, report=False)
    except ImportError as error:
        raise UsageError(f"--reference onnx needs {error.name or 'onnxscript'}: "
                         f"{ONNX_EXTRA}") from None
    except Exception as error:  # noqa: BLE001 - the exporter's own message names the op
        raise UsageError(_conversion_error("torch.onnx.export", error)) from None
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    feeds = [i.name for i in session.get_inputs()]
    if len(example[0]) > 1 and isinstance(session.get_inputs()[0].shape[0], int):
        # the exporter fixed the batch it traced (a Python loop over the batch): run one
        # example at a time through a program traced on one
        return _one_at_a_time(_onnx(model, _first(example), names))

    def run(inputs: Inputs) -> Any:
        arrays = [t.detach().cpu().numpy() for t in inputs]
        outputs = session.run(None, dict(zip(feeds, arrays)))
        tensors = tuple(torch.from_numpy(o) for o in outputs)
        return tensors[0] if len(tensors) == 1 else tensors

    return run


def _export(model: nn.Module, example: Inputs, names: Names, dynamic: bool) -> Any:
    """torch.export's program; _BatchSpecialized when the model fixes its batch size."""
    args, kwargs = _split(example, names)
    try:
        with _quiet():
            return torch.export.export(model, args, kwargs=kwargs or None,
                                       dynamic_shapes=_batch_dims(example, names)
                                       if dynamic and len(example[0]) > 1 else None)
    except Exception as error:
        if dynamic and "Constraints violated (batch)" in str(error):
            raise _BatchSpecialized from error
        raise


class _BatchSpecialized(Exception):
    """The model fixes the batch it is traced with (a Python loop over the examples)."""


def _first(example: Inputs) -> Inputs:
    return tuple(t[:1] for t in example)


def _one_at_a_time(run_one: Callable[[Inputs], Any]) -> Callable[[Inputs], Any]:
    """A runtime traced on a batch of one, run on each example of a batch in turn: slower,
    but what a model that loops over its batch in Python can be converted to."""

    def run(inputs: Inputs) -> Any:
        outputs = [run_one(tuple(t[i:i + 1] for t in inputs)) for i in range(len(inputs[0]))]
        if isinstance(outputs[0], torch.Tensor):
            return torch.cat(outputs)
        return tuple(torch.cat(parts) for parts in zip(*outputs))

    return run


def _conversion_error(exporter: str, error: BaseException) -> str:
    """One line: the converter's innermost error, and the line of the model it stopped at."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    frames = [f"{Path(path).name}:{line}" for text in (str(root), str(error))
              for path, line in _FRAME.findall(text) if "site-packages" not in path]
    at = f" at {frames[0]}" if frames else ""
    message = _ANSI.sub("", first_line(root))[:300]
    return (f"{exporter} cannot convert the model{at} ({type(root).__name__}: {message}): make "
            "that part of forward() exportable, or fuzz against another --reference.")


#: A traceback line in a converter's message, and terminal colour codes.
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _batch_dims(example: Inputs, names: Names) -> Any:
    """Every input's first dimension dynamic (the batch), the rest as in the seeds."""
    batch = torch.export.Dim("batch")
    dims = [{0: batch} for _ in example]
    if names:
        return dict(zip(names, dims))
    return tuple(dims)


def _split(example: Inputs, names: Names) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    if names:
        return (), dict(arguments(example, names))  # type: ignore[arg-type]
    return tuple(example), {}


def _call(function: Callable[..., Any], inputs: Inputs, names: Names) -> Any:
    if names:
        return function(**arguments(inputs, names))  # type: ignore[arg-type]
    return function(*inputs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converters print pages of logs and warnings: nnfuzz says one line instead."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch._dynamo", "torch.export",
                                                     "torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
