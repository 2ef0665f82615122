"""Where a NaN or Inf was made: the first operation, and the line of the user's code.

The fuzz loop names the first *module* whose output is non-finite: cheap, but
the value may have been made earlier, by functional code in a parent's
``forward()`` (a ``x / x.std()``), which no module hook sees. On a reproducer
alone (replay, minimize, a new failure once), nnfuzz runs the model again under
a dispatch mode that looks at every operation's result and reports the first
that turned finite inputs into NaN or Inf, with the line that called it.
Never in the hot loop: checking every operation costs many times the forward.

The operation named is the one on the path of the non-finite value that reached the
model's output: each operation that outputs NaN or Inf is recorded with the records of
its non-finite inputs, and the walk goes back from the output until it meets the
operation that made the value out of values without it. An Inf made on purpose and
consumed (transformers' attention masks build -inf, which softmax turns into zeros) is
not on that path, so it is not blamed. When the output is finite (a NaN inside that
did not reach it), the first operation that made a NaN is named, else the first Inf.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from nnfuzz.domain import Inputs, Names, call
from nnfuzz.errors import user_frame
from nnfuzz.reproducer import Failure


@dataclass(frozen=True)
class Origin:
    """The operation that made the first non-finite value, and the line that ran it."""

    operation: str
    kind: str
    location: str

    def describe(self) -> str:
        return f"the first {self.kind} was made by {self.operation} at {self.location}"


def first_nonfinite_operation(model: torch.nn.Module, inputs: Inputs, names: Names,
                              source: Path | None = None) -> Origin | None:
    """Run ``model`` on ``inputs`` (no gradient) and find the operation that made the
    non-finite value of its output out of values without it (else the first made inside);
    None when there is none (or it cannot be told)."""
    mode = _Watch(source)
    output = None
    try:
        with torch.no_grad(), mode:
            output = call(model, inputs, names)
    except Exception:  # noqa: BLE001 - a model that raises: its exception says where
        pass
    return mode.origin_of(output)


def with_origin(failure: Failure, model: torch.nn.Module, names: Names,
                source: Path | None) -> Failure:
    """A nonfinite failure whose detail also says which operation made the value, and where."""
    if failure.objective != "nonfinite":
        return failure
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    origin = first_nonfinite_operation(model, tuple(t.unsqueeze(0).to(device) for t in failure.inputs),
                                       names, source)
    if origin is None:
        return failure
    return replace(failure, detail=f"{failure.detail}; {origin.describe()}")


@dataclass(frozen=True)
class _Made:
    """An operation whose output held NaN or Inf: what it made itself, and the records of
    its inputs that already held some (the path back)."""

    origin: Origin
    made: frozenset[str]
    inputs: tuple[tuple["_Made", frozenset[str]], ...]

    def maker(self, kind: str) -> "_Made | None":
        """Back along the inputs that held ``kind`` to the operation that made it."""
        if kind in self.made:
            return self
        for record, held in self.inputs:
            if kind in held and (found := record.maker(kind)) is not None:
                return found
        return None


class _Watch(TorchDispatchMode):
    def __init__(self, source: Path | None) -> None:
        super().__init__()
        self.source = source.resolve() if source is not None else None
        #: The record of each tensor that holds NaN or Inf, by id; the tensors themselves
        #: are kept alive with it, so that an id is never reused for another.
        self.records: dict[int, tuple[torch.Tensor, _Made]] = {}
        #: Every operation that made NaN or Inf, in order.
        self.made: list[_Made] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        # The inputs are read before the call: an in-place operation changes them.
        held = [(leaf, _nonfinite(leaf)) for leaf in _float_tensors((args, kwargs))]
        held = [(leaf, kinds) for leaf, kinds in held if kinds]
        result = func(*args, **(kwargs or {}))
        outputs = [(leaf, _nonfinite(leaf)) for leaf in _float_tensors(result)]
        outputs = [(leaf, kinds) for leaf, kinds in outputs if kinds]
        if not outputs:
            return result
        given = frozenset().union(*(kinds for _, kinds in held)) if held else frozenset()
        produced = frozenset().union(*(kinds for _, kinds in outputs))
        made = _made(set(produced), set(given))
        record = _Made(Origin(_operation_name(func), made, _user_line(self.source)) if made
                       else _UNTOLD,
                       frozenset({made}) if made else frozenset(),
                       tuple((self.records[id(leaf)][1], kinds) for leaf, kinds in held
                             if id(leaf) in self.records))
        if made:
            self.made.append(record)
        for leaf, _ in outputs:
            self.records[id(leaf)] = (leaf, record)
        return result

    def origin_of(self, output: Any) -> Origin | None:
        """The maker of the non-finite value that reached ``output``; else the first NaN
        made, else the first Inf."""
        reached = [(self.records[id(leaf)][1], _nonfinite(leaf)) for leaf in _float_tensors(output)
                   if id(leaf) in self.records]
        for kind in ("NaN", "Inf"):
            for record, held in reached:
                if kind in held and (maker := record.maker(kind)) is not None:
                    return maker.origin
        for kind in ("NaN", "Inf"):
            for record in self.made:
                if kind in record.made:
                    return record.origin
        return None


#: The origin of a record that made nothing itself (it passed values on).
_UNTOLD = Origin("", "", "")


def _float_tensors(values: Any) -> list[torch.Tensor]:
    return [leaf for leaf in pytree.tree_leaves(values)
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()]


def _made(output: set[str], inputs: set[str]) -> str | None:
    """What an operation made: a NaN none of its inputs held, or an Inf out of finite
    inputs (-Inf in inputs is common: attention masks fill with it on purpose)."""
    if "NaN" in output and "NaN" not in inputs:
        return "NaN"
    if "Inf" in output and not inputs:
        return "Inf"
    return None


def _nonfinite(values: Any) -> set[str]:
    """Which of "NaN" and "Inf" the float tensors among ``values`` hold."""
    found: set[str] = set()
    for leaf in pytree.tree_leaves(values):
        if not isinstance(leaf, torch.Tensor) or not leaf.is_floating_point():
            continue
        try:
            dense = leaf.to_padded_tensor(0.0) if leaf.is_nested else leaf
            if bool(torch.isnan(dense).any()):
                found.add("NaN")
            if bool(torch.isinf(dense).any()):
                found.add("Inf")
        except RuntimeError:  # a tensor kind whose values cannot be read here
            continue
    return found


def _operation_name(func: Any) -> str:
    """aten.div.Tensor -> torch.div (what the user wrote, near enough)."""
    name = str(getattr(func, "__name__", func)).split(".")[0]
    return f"torch.{name}" if not name.startswith("_") else f"aten.{name}"


def _user_line(source: Path | None) -> str:
    """The innermost line of the target file (else of any code outside torch and nnfuzz)."""
    chosen = user_frame(traceback.extract_stack(), source, fallback=False)
    if chosen is None:
        return "an unknown line"
    return f"{Path(chosen.filename).name}:{chosen.lineno} ({(chosen.line or '').strip()})"
