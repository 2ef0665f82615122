"""Loading a target file: the contract of the README's *The target file*.

A target is a Python file that defines ``model()`` and ``seeds()`` (and
optionally ``BOUNDS``, ``INPUTS``, ``targets()``, ``loss``, ``reference()``,
``objectives()``, and ``init()`` for ``nnfuzz doctor``). Importing it runs its
code, so it is trusted like a test file. Every way it can break the contract
becomes a :class:`TargetError` naming the file, the name and the fix.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from nnfuzz.domain import Domain, Inputs, Names, as_named_inputs
from nnfuzz.inference import infer_domain
from nnfuzz.errors import TargetError, first_line, user_traceback
from nnfuzz.storage import content_hash


@dataclass
class Target:
    """What a target file provides, already called and checked."""

    #: The target file, or None for a model given to nnfuzz.fuzz directly.
    path: Path | None
    sha256: str
    model: torch.nn.Module
    seeds: Inputs | None
    bounds: object = None
    #: What targets() returned: one label per seed.
    labels: torch.Tensor | None = None
    loss: Callable[..., torch.Tensor] | None = None
    reference: Callable[[], Any] | None = None
    objectives: list[Callable[..., torch.Tensor]] = field(default_factory=list)
    #: Builds a freshly initialised model (``init()``, or ``model(pretrained=False)``);
    #: None when the target cannot give one. Only ``nnfuzz doctor`` calls it.
    init: Callable[[], Any] | None = None
    #: The inputs' keyword names when ``seeds()`` returned a mapping (the model is
    #: called ``model(**inputs)``); None for positional inputs.
    input_names: Names = None
    #: ``INPUTS``: the kinds the target declares (see nnfuzz.kinds), or None.
    inputs: object = None
    #: What ``nnfuzz train`` may use besides (the README's *Training*): ``train_data()``,
    #: ``optimizer(parameters)`` and ``train_step(model, batch, optimizer)``; None where absent.
    train_data: Callable[[], Any] | None = None
    optimizer: Callable[..., Any] | None = None
    train_step: Callable[..., Any] | None = None
    #: ``HYPERPARAMETERS`` as the file gives it (checked by nnfuzz.training.hyperparameters),
    #: and ``train_objectives()``: callables given each training step's state.
    #: ``model()`` itself, so that nnfuzz train can call it again to see whether it gives
    #: the same starting weights each time; None for a model given as an object.
    model_factory: Callable[[], Any] | None = None
    hyperparameters: object = None
    train_objectives: list[Callable[..., Any]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """How messages name the target: its file name."""
        return self.path.name if self.path else "the target"

    def domain(self, seeds: Inputs | None = None, names: Names = None) -> Domain:
        """The domain of ``seeds`` (default: the target's own) under its BOUNDS and INPUTS."""
        if seeds is None:
            seeds, names = self.seeds, self.input_names
        return infer_domain(seeds, self.bounds, self.origin, names=names,  # type: ignore[arg-type]
                            declared=self.inputs, model=self.model)

    @functools.cached_property
    def seeds_sha256(self) -> str | None:
        """The seeds' content hash, so that records say which seeds a result came from."""
        return content_hash(self.seeds) if self.seeds is not None else None


def in_memory(model: torch.nn.Module, seeds: object = None, **fields: Any) -> Target:
    """A target made of Python objects rather than a file (for nnfuzz.fuzz and tests); the
    fields are named as in a target file (``bounds``, ``inputs``, ``targets``, ``loss``, ...)."""
    if "targets" in fields:
        fields["labels"] = fields.pop("targets")
    if not isinstance(model, torch.nn.Module):
        raise TargetError(f"model is a {type(model).__name__}, not a torch.nn.Module.")
    model.eval()  # as for a target file (the README's *The target file*): replay and shrinking judge it in eval mode
    inputs, names = as_named_inputs(seeds, "seeds") if seeds is not None else (None, None)
    if inputs is not None:
        check_call(model, inputs, names, "seeds")
    return Target(path=None, sha256="", model=model, seeds=inputs, input_names=names, **fields)


def check_call(model: torch.nn.Module, inputs: Inputs, names: Names, what: str) -> None:
    """The seeds must fit the parameters of the model's forward(): named inputs its keywords,
    positional ones its positions. A mismatch is the target's contract, not an exception the
    model raised on a seed, and the commonest one, a list of per-example tensors (what a
    Dataset yields), is said as such."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # a C or scripted forward: no signature to read
        return
    parameters = ", ".join(signature.parameters) or "nothing"
    forward = f"{type(model).__name__}.forward() takes ({parameters})"
    try:
        if names is not None:
            signature.bind(**{name: None for name in names})
        else:
            signature.bind(*[None] * len(inputs))
    except TypeError as error:
        if names is not None:
            raise TargetError(f"{what} returned inputs named {', '.join(map(repr, names))}, but "
                              f"{forward} ({error}): name the dict's keys after forward()'s "
                              "parameters.") from None
        shapes = {tuple(t.shape) for t in inputs}
        if len(inputs) > 1 and len(shapes) == 1 and len({t.dtype for t in inputs}) == 1:
            shape = next(iter(shapes))
            raise TargetError(f"{what} returned {len(inputs)} tensors of shape {shape}, read as "
                              f"{len(inputs)} inputs of one batch, but {forward}: if each tensor "
                              "is one example (what a Dataset yields), stack them: return "
                              f"torch.stack(examples), shape {(len(inputs), *shape)}.") from None
        raise TargetError(f"{what} returned {len(inputs)} input tensor(s), but {forward} "
                          f"({error}): return one tensor (N, ...) per parameter of forward(), "
                          "in a tuple, or a dict of them by keyword.") from None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_target(path: str | Path, *, need_seeds: bool = True) -> Target:
    """Import ``path`` and read the names of the target contract."""
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"{path}: no such target file: give the path of a Python file "
                          "that defines model() and seeds().")
    module = _import_file(path)
    name = path.name
    model = _call(module, name, "model", required=True)
    if not isinstance(model, torch.nn.Module):
        raise TargetError(f"{name}: model() returned {type(model).__name__}, not a "
                          "torch.nn.Module: return the network itself.")
    model.eval()
    seeds, names = _call(module, name, "seeds", required=need_seeds), None
    if seeds is not None:
        seeds, names = as_named_inputs(seeds, f"{name}: seeds()")
        check_call(model, seeds, names, f"{name}: seeds()")
    targets = _call(module, name, "targets", required=False)
    if targets is not None:
        targets = _checked_targets(name, targets, seeds)
    return Target(
        path=path,
        sha256=file_sha256(path),
        model=model,
        seeds=seeds,
        bounds=getattr(module, "BOUNDS", None),
        inputs=getattr(module, "INPUTS", None),
        input_names=names,
        labels=targets,
        loss=_callable(module, name, "loss"),
        reference=_callable(module, name, "reference"),
        objectives=_user_objectives(module, name),
        init=_fresh_model_builder(module, name),
        train_data=_callable(module, name, "train_data"),
        optimizer=_callable(module, name, "optimizer"),
        train_step=_callable(module, name, "train_step"),
        hyperparameters=getattr(module, "HYPERPARAMETERS", None),
        model_factory=module.model,
        train_objectives=_user_objectives(module, name, "train_objectives",
                                          "(state) -> bool, given each training step's state"),
    )


def _import_file(path: Path) -> Any:
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = f"nnfuzz_target_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{path}: cannot be imported as Python: give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # noqa: BLE001 - the target's own failure, shown to the user
        sys.modules.pop(module_name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        raise TargetError(
            f"{path.name}: importing the target raised {type(error).__name__}: {first_line(error)}",
            context=user_traceback(error),
        ) from None
    return module


def _call(module: Any, file: str, name: str, *, required: bool) -> Any:
    function = getattr(module, name, None)
    if function is None:
        if required:
            alternative = " or give --corpus DIR with inputs" if name == "seeds" else ""
            raise TargetError(f"{file}: no {name}() defined: define {name}() at the top level "
                              f"of the target file{alternative} (see the README's 'The target file').")
        return None
    if not callable(function):
        raise TargetError(f"{file}: {name} is a {type(function).__name__}, not a function: "
                          f"define it as def {name}(): ...")
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
        raise TargetError(f"{file}: {name}() raised {type(error).__name__}: {first_line(error)}",
                          context=user_traceback(error)) from None


def _callable(module: Any, file: str, name: str) -> Callable[..., Any] | None:
    function = getattr(module, name, None)
    if function is not None and not callable(function):
        raise TargetError(f"{file}: {name} is a {type(function).__name__}, not a function.")
    return function


def _fresh_model_builder(module: Any, file: str) -> Callable[[], Any] | None:
    """``init()`` if the target defines it, else ``model(pretrained=False)`` where model()
    takes that keyword: the two ways a target says how to build an untrained model."""
    init = _callable(module, file, "init")
    if init is not None:
        return init
    try:
        keywords = inspect.signature(module.model).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return None
    if "pretrained" in keywords:
        return functools.partial(module.model, pretrained=False)
    return None


def _user_objectives(module: Any, file: str, function: str = "objectives",
                     form: str = "(inputs, output) -> BoolTensor of shape (N,)") -> list[Callable[..., Any]]:
    found = _call(module, file, function, required=False)
    if found is None:
        return []
    if not isinstance(found, (list, tuple)) or not all(callable(f) for f in found):
        raise TargetError(f"{file}: {function}() must return a list of callables {form}.")
    return list(found)


def _checked_targets(file: str, targets: object, seeds: Inputs | None) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor):
        raise TargetError(f"{file}: targets() returned {type(targets).__name__}: "
                          "return a Tensor of shape (N, ...) aligned with seeds().")
    if seeds is not None and (targets.dim() == 0 or targets.shape[0] != seeds[0].shape[0]):
        raise TargetError(f"{file}: targets() has shape {tuple(targets.shape)} but seeds() "
                          f"has N = {seeds[0].shape[0]}: give one target per seed.")
    return targets.detach()


def call_loss(target: Target, output: Any, labels: torch.Tensor | None, hint: str) -> torch.Tensor:
    """The target's ``loss(output, target)`` as it returns it; its own exception, or a value
    that is not a tensor, is one TargetError naming the target (``hint``: what loss() gets)."""
    try:
        value = target.loss(output, labels)  # type: ignore[misc]
    except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
        raise TargetError(f"{target.origin}: loss(output, target) raised {type(error).__name__}: "
                          f"{first_line(error)}: {hint}", context=user_traceback(error)) from None
    if not isinstance(value, torch.Tensor):
        raise TargetError(f"{target.origin}: loss(output, target) returned "
                          f"{type(value).__name__}: return a tensor, (N,) or a scalar.")
    return value
