"""Running the model on a batch and capturing what every judge needs.

One forward pass per batch serves coverage and every objective: a forward
hook reduces each module's output to a few per-example statistics on the spot
(cheap, and enough to name the first non-finite module and to push the
search toward extreme activations), and captures the full activations of the
``--layer`` modules that form the coverage vector.

The hook must not change what the model computes. PyTorch switches off fused
fast paths when a module has hooks of its own (nn.TransformerEncoderLayer
checks its modules' ``_forward_hooks``), so the hook is one global module hook
(``register_module_forward_hook``), which those checks do not see; the seeds
are run once without it at all to confirm that the outputs are the same, and
where they are not, every batch is judged on a plain pass of its own.
Module outputs are read however they come (nested tensors, PackedSequence,
tuples, ``(N,)`` and sequence-first tensors); what cannot be read is skipped,
never raised on the model's behalf.
"""

from __future__ import annotations

import traceback
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from nnfuzz import hooks
from nnfuzz.domain import Inputs, Names, call
from nnfuzz.reading import batch_first, batch_rows, output_tensors, primary_output, same_outputs
from nnfuzz.errors import NnfuzzError, TargetError, UsageError, first_line, user_frame
from nnfuzz.execution_record import STATS, Execution, RaisedError, joined
from nnfuzz.reductions import ModuleStatistics, Reducer

#: STATS and Execution are execution_record's, imported from here as well.
__all__ = ["STATS", "Execution", "Executor", "Pass", "RaisedError", "UnbatchedOutput", "Watch",
           "model_device"]


def model_device(model: torch.nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


#: Given a module's index and its output rows (batch first, not detached), as the module
#: makes them during a watched pass (:meth:`Executor.watched`).
Watch = Callable[[int, torch.Tensor], None]


@dataclass
class Pass:
    """What one forward pass gathers as the model runs: the hook fills it while it is the
    executor's current pass, and only then, so that nothing of one pass leaks into the next."""

    #: The batch size, to tell the rows of a module's output.
    batch: int
    #: When set, each module output goes to it instead of being reduced and captured.
    watch: Watch | None = None
    #: Each module output's reductions, in forward order.
    reduced: Reducer = field(default_factory=Reducer)
    #: The coverage layers' outputs (pooled where a pool is set), by layer name.
    captured: dict[str, torch.Tensor] = field(default_factory=dict)


class Executor:
    """Runs a model with hooks that reduce every module's output as it is made.

    A context manager: leaving it closes the executor, which takes its process-wide
    hook out."""

    def __init__(self, model: torch.nn.Module, *, layers: list[str] | None = None,
                 source: Path | None = None, names: Names = None) -> None:
        self.model = model
        #: The inputs' keyword names: the model is called model(**inputs) when set.
        self.names = names
        self.device = model_device(model)
        self.source = source.resolve() if source is not None else None
        self._modules = dict(model.named_modules())
        self.module_names = [name or "(model)" for name in self._modules]
        self._index = {module: position for position, module in enumerate(self._modules.values())}
        self.callers = _callers(self._modules)
        self.use_layers(list(layers or []))
        self._statistics = ModuleStatistics(len(self.module_names))
        #: The forward pass under way (:meth:`_passing`); None between passes.
        self._pass: Pass | None = None
        #: Set when instrumenting the model was seen to change its outputs: every batch
        #: is then judged on a plain pass, and the instrumented one only gives coverage.
        self.judge_plainly = False
        # The hook is process-wide: it holds the executor weakly, and goes when the executor
        # does (closed or dropped), so that a forgotten executor slows nothing down. Nothing
        # here refers back to the executor, so dropping it is enough: no cycle to collect.
        self._hook_function = _weak_hook(self)
        hooks.install(self._hook_function)
        weakref.finalize(self, hooks.uninstall, self._hook_function)

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *_exception: object) -> None:
        self.close()

    def close(self) -> None:
        hooks.uninstall(self._hook_function)

    def use_layers(self, layers: list[str], pool: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> None:
        """Make the coverage vector the activations of these modules (none: the output),
        each passed through ``pool`` when given (a layer nnfuzz chose, narrowed)."""
        self._pool = pool
        unknown = [name for name in layers if name not in self._modules]
        if unknown:
            names = ", ".join(repr(n) for n in list(self._modules)[1:20])
            raise UsageError(f"--layer {unknown[0]!r} is not a module of the model: "
                             f"choose from model.named_modules(), e.g. {names}")
        self.layers = list(layers)
        self._layer_modules = {self._modules[name]: name for name in self.layers}

    def activations(self, inputs: Inputs) -> list[tuple[str, torch.Tensor]]:
        """Every module's output on ``inputs`` as (batch, values) rows, in forward order
        (each module once): what a coverage layer could be."""
        first: dict[int, torch.Tensor] = {}

        def keep_first(index: int, rows: torch.Tensor) -> None:
            if index not in first:
                first[index] = rows.detach().float()

        with torch.no_grad():
            self.watched(inputs, keep_first)
        return [(self.module_names[i], rows) for i, rows in first.items()]

    def watched(self, inputs: Inputs, watch: Watch) -> Any:
        """The model's output on ``inputs``, each module's output rows handed to ``watch``
        as they are made (a gradient pass reads them; an exception ``watch`` raises ends
        the forward pass and goes to the caller)."""
        with self._passing(Pass(inputs[0].shape[0], watch)):
            return call(self.model, inputs, self.names)

    # --- the hook ----------------------------------------------------------------

    @contextmanager
    def _passing(self, current: Pass) -> Iterator[Pass]:
        """``current`` is the pass the hook fills until the forward pass ends, however it ends."""
        previous, self._pass = self._pass, current
        try:
            yield current
        finally:
            self._pass = previous

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        # One hook for every module of the process: only this model's, only during a pass
        # (not the loss's or a reference's own forward pass).
        current = self._pass
        index = self._index.get(module) if current is not None else None
        if current is None or index is None:
            return
        try:
            flat = batch_rows(output, current.batch)
        except Exception:  # noqa: BLE001 - an output nnfuzz cannot read is skipped, never raised
            return
        if flat is None:
            return
        if current.watch is not None:
            current.watch(index, flat)
            return
        if module in self._layer_modules:
            captured = flat.detach().float()
            current.captured.setdefault(self._layer_modules[module], self._pool(captured)
                                        if self._pool is not None else captured)
        if flat.shape[1] > 0:
            current.reduced.add(index, module, args, flat)

    # --- running -----------------------------------------------------------------

    def run(self, inputs: Inputs, labels: torch.Tensor | None = None,
            has_label: torch.Tensor | None = None, *, one_by_one: bool = True) -> Execution:
        """Run a batch; if it raises, run its examples one by one to find which (or, without
        ``one_by_one``, raise it). ``labels``: each example's label (its seed's), known where
        ``has_label``."""
        try:
            judged, seen = self._forward_batch(inputs)
        except NnfuzzError:
            raise
        except Exception:  # noqa: BLE001 - the model's failure is a finding, not ours
            if not one_by_one:
                raise
            execution = self._run_one_by_one(inputs)
        else:
            # nnfuzz's own errors here are not the model's
            execution = self._collect(inputs, judged, seen)
        if labels is None:
            return execution
        return replace(execution, labels=labels.to(self.device),
                       has_label=(has_label if has_label is not None
                                   else torch.ones(len(labels), dtype=torch.bool)).to(self.device))

    def plain(self, inputs: Inputs) -> Any:
        """The model's output with no instrumentation at all: what the user's own call gives.
        Every nnfuzz hook is out meanwhile, this executor's and any other's, since a model may
        see that a hook is registered (``_global_forward_hooks``) and compute otherwise."""
        with hooks.suspended(), torch.no_grad():
            return call(self.model, inputs, self.names)

    def confirm_unobserved(self, inputs: Inputs) -> str | None:
        """Whether the hook leaves the model's outputs on ``inputs`` as they are; if not, every
        later batch is judged on a plain pass of its own, and the returned line says why."""
        try:
            plain = self.plain(inputs)
            with torch.no_grad():
                observed, _ = self._forward(inputs)
        except Exception:  # noqa: BLE001 - the seeds' own check reports the model raising
            return None
        if same_outputs(plain, observed) or not same_outputs(plain, self.plain(inputs)):
            return None  # unchanged, or a model whose plain outputs differ run to run
        self.judge_plainly = True
        return ("instrumenting the model changes its outputs on the seeds, so every batch runs "
                "twice: plain for the verdicts, instrumented for coverage (about half the speed)")

    def _forward(self, inputs: Inputs) -> tuple[Any, Pass]:
        """The model's output, and what the hook gathered of each module's."""
        with self._passing(Pass(inputs[0].shape[0])) as seen:
            return call(self.model, inputs, self.names), seen

    def _forward_batch(self, inputs: Inputs) -> tuple[Any, Pass]:
        """(what the objectives judge, what the hook saw): one pass, or two when
        instrumenting the model changes what it computes."""
        judged = self.plain(inputs) if self.judge_plainly else None
        with torch.no_grad():
            output, seen = self._forward(inputs)
        return (judged if self.judge_plainly else output), seen

    def _collect(self, inputs: Inputs, output: Any, seen: Pass) -> Execution:
        size = inputs[0].shape[0]
        outputs = [first for t in output_tensors(output)
                   if (first := batch_first(t, size)) is not None]
        primary = primary_output(output)
        if primary is not None:
            primary = batch_first(primary, size)
        if primary is None:
            raise UnbatchedOutput(_shape_of(output), size)
        primary = primary.detach().float()
        if self.layers:
            missing = [name for name in self.layers if name not in seen.captured]
            if missing:
                raise UsageError(f"--layer {missing[0]!r} did not run in the forward pass "
                                 "(or its output has no batch dimension): choose another layer.")
            coverage = torch.cat([seen.captured[name] for name in self.layers], 1)
        else:
            coverage = primary.reshape(size, -1)
        events = seen.reduced.events
        stats, absmax_matrix = self._statistics(events, size, primary.device)
        return Execution(inputs=inputs, output=output, outputs=[t.detach() for t in outputs],
                         primary=primary, judged_plainly=self.judge_plainly, callers=self.callers,
                         coverage=coverage, stats=stats,
                         event_modules=[self.module_names[index] for index, _, _ in events],
                         event_absmax=absmax_matrix)

    def _run_one_by_one(self, inputs: Inputs) -> Execution:
        size = inputs[0].shape[0]
        results: list[Execution | None] = []
        raised: list[RaisedError | None] = []
        for example in range(size):
            single = tuple(tensor[example:example + 1] for tensor in inputs)
            try:
                judged, seen = self._forward_batch(single)
            except NnfuzzError:
                raise
            except Exception as error:  # noqa: BLE001 - recorded as a finding
                results.append(None)
                raised.append(self.describe_error(error))
                continue
            results.append(self._collect(single, judged, seen))
            raised.append(None)
        return joined(inputs, results, raised, len(self.module_names))

    def describe_error(self, error: BaseException) -> RaisedError:
        return RaisedError(type(error).__name__, first_line(error)[:200], self._location(error))

    def _location(self, error: BaseException) -> str:
        chosen = user_frame(traceback.extract_tb(error.__traceback__), self.source)
        return f"{Path(chosen.filename).name}:{chosen.lineno}" if chosen else "unknown"


class UnbatchedOutput(TargetError):
    """The model's output has no tensor whose first dimension is the batch."""

    def __init__(self, returned: str, size: int) -> None:
        super().__init__(f"the model returned {returned} with no tensor whose first dimension "
                         f"is the batch ({size}): return a tensor (N, ...), or a tuple, list or "
                         "dict of them.")
        self.returned = returned


def _shape_of(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    return type(output).__name__


def _callers(modules: dict[str, torch.nn.Module]) -> dict[str, str]:
    """For each module name, the nearest ancestor whose forward() runs it: containers without
    a forward of their own (ModuleList, ModuleDict) or without the user's code in it
    (Sequential) are passed over; the model is ""."""
    callers = {}
    for name in modules:
        parent = name
        while parent:
            parent = parent.rpartition(".")[0]
            if not isinstance(modules.get(parent), (torch.nn.ModuleList, torch.nn.ModuleDict,
                                                    torch.nn.Sequential)):
                break
        callers[name or "(model)"] = parent
    return callers


def _weak_hook(executor: "Executor") -> Callable[..., None]:
    """The executor's hook, holding it weakly."""
    reference = weakref.ref(executor)

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        alive = reference()
        if alive is not None:
            alive._hook(module, args, output)

    return hook
