"""Failures and their reproducer files (the README's *Output folder*).

A :class:`Failure` is a failing input with everything needed to re-run and
explain it: the seed it came from, the objective, the detail, and the
signature that makes two failures the same bug. Saved, it is one
safetensors file (tensors ``input.N``, ``seed.N``, ``target``, or ``input.<name>``
and ``seed.<name>`` for named inputs; string metadata), so loading it runs no code.
"""

from __future__ import annotations

import json

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nnfuzz.domain import Inputs, Names
from nnfuzz.errors import ReproducerError
from nnfuzz.storage import (NAMES_KEY, atomic_write, content_hash, input_tensors, names_in,
                            names_metadata, read_tensor_bytes, saved_inputs, tensor_file_bytes)

#: The prefix of the tensors an engine keeps besides the input (Failure.extra).
EXTRA = "extra"
#: Metadata every reproducer must carry to be replayed.
REQUIRED_METADATA = ("objective", "detail", "signature")


@dataclass
class Failure:
    """A failing input (per-example tensors, no batch dimension) and its story."""

    inputs: Inputs
    seed: Inputs
    objective: str
    detail: str
    signature: str
    #: The label of the seed it came from (targets()), saved as the tensor ``target``.
    label: torch.Tensor | None = None
    #: The rest of the README's *Output folder*'s metadata: versions, run seed, distance, when found.
    metadata: dict[str, str] = field(default_factory=dict)
    #: Where the reproducer was saved, once it was.
    path: Path | None = None
    #: The inputs' keyword names, for a model called with named inputs.
    names: Names = None
    #: Tensors an engine needs besides the input to replay it (a training trajectory's
    #: steps), saved as ``extra.<key>``.
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" -> {self.path}" if self.path else ""
        found = ""
        if self.metadata.get("engine") == "train":
            found = (f" (found after {self.metadata.get('found_after_execs', '?')} training steps, "
                     f"{float(self.metadata.get('found_after_s', 0)):.1f}s: a trajectory of "
                     f"{self.metadata.get('steps', '?')} steps, "
                     f"{self.metadata.get('perturbed_steps', '?')} of them on moved inputs or "
                     f"labels{_hyperparameters(self.metadata.get('hyperparameters', '{}'))})")
        elif "found_after_execs" in self.metadata:
            found = (f" (found after {self.metadata['found_after_execs']} execs, "
                     f"{float(self.metadata.get('found_after_s', 0)):.1f}s, "
                     f"{self.metadata.get('mutations', '?')} mutations from its seed)")
        minimized = self.metadata.get("minimized", "")
        if minimized.startswith("unchanged:"):
            found += f" (minimization changed nothing: {minimized.split(':', 1)[1].strip()})"
        elif minimized:
            toward = "its trajectory" if self.metadata.get("engine") == "train" else "toward its seed"
            found += f" (minimized {toward}: {minimized})"
        return f"{self.objective}: {self.detail}{found}{where}"

    @property
    def content_hash(self) -> str:
        return content_hash(self.inputs)

    @property
    def file_name(self) -> str:
        return f"{self.objective}-{self.content_hash[:16]}.safetensors"

    def to_bytes(self) -> bytes:
        tensors = input_tensors(self.inputs, self.names, "input")
        tensors.update(input_tensors(self.seed, self.names, "seed"))
        if self.label is not None:
            tensors["target"] = self.label
        tensors.update({f"{EXTRA}.{key}": tensor for key, tensor in self.extra.items()})
        metadata = dict(self.metadata)
        metadata.update(objective=self.objective, detail=self.detail, signature=self.signature,
                        **names_metadata(self.names))
        return tensor_file_bytes(tensors, metadata)

    def save(self, path: str | Path) -> Path:
        """Write the reproducer atomically; a folder gets the content-hashed name."""
        path = Path(path)
        if path.is_dir():
            path = path / self.file_name
        atomic_write(path, self.to_bytes())
        self.path = path
        return path


def load_failure(path: str | Path) -> Failure:
    """Read a reproducer; anything else is a :class:`ReproducerError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReproducerError(f"{path}: no such file: give a reproducer from OUT/crashes/.") from None
    except OSError as error:
        raise ReproducerError(f"{path}: not a valid reproducer: {error}.") from None
    failure = failure_from_bytes(data, str(path))
    failure.path = path
    return failure


def failure_from_bytes(data: bytes, origin: str) -> Failure:
    """A reproducer's bytes (what :meth:`Failure.to_bytes` wrote) as a Failure; ``origin``
    names them in the :class:`ReproducerError` raised when they are not one."""
    try:
        tensors, metadata = read_tensor_bytes(data)
        inputs = saved_inputs(tensors, metadata, "input")
        seed = saved_inputs(tensors, metadata, "seed")
        names = names_in(metadata)
    except ValueError as error:
        raise ReproducerError(f"{origin}: not a valid reproducer: {error}.") from None
    missing = [name for name in REQUIRED_METADATA if not metadata.get(name)]
    if missing:
        raise ReproducerError(f"{origin}: not a valid reproducer: its metadata has no "
                              f"{missing[0]!r}.")
    rest = {k: v for k, v in metadata.items() if k not in (*REQUIRED_METADATA, NAMES_KEY)}
    return Failure(inputs=inputs, seed=seed, objective=metadata["objective"],
                   detail=metadata["detail"], signature=metadata["signature"],
                   label=tensors.get("target"), metadata=rest, names=names,
                   extra={key[len(EXTRA) + 1:]: tensor for key, tensor in tensors.items()
                          if key.startswith(f"{EXTRA}.")})


def replay_command(target: str | Path, reproducer: str | Path) -> str:
    """The shell command that re-runs a reproducer, as every report prints it."""
    return f"nnfuzz replay {shlex.quote(str(target))} {shlex.quote(str(reproducer))}"


def reproducer_paths(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to the .safetensors files in them."""
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir()
                                if p.suffix == ".safetensors" and not p.name.startswith(".")))
        else:
            found.append(path)
    return found


def _hyperparameters(saved: str) -> str:
    """A training reproducer's hyperparameters as the failure line says them ("" if none)."""
    try:
        values = json.loads(saved)
    except ValueError:
        return ""
    return "".join(f", {name} {value:.4g}" for name, value in sorted(values.items())
                   if isinstance(value, (int, float)))
