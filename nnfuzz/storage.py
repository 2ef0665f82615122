"""Files on disk: atomic writes, content hashes and safetensors tensor files.

Corpus inputs and reproducers are safetensors files: a JSON header and raw
bytes, so loading one runs no code (no pickle, ever). Every write goes to a
temporary file in the same folder, is flushed to disk, then renamed over the
final name, so a run killed at any moment never leaves a half-written file
under a real name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from nnfuzz.domain import Inputs, Names
from nnfuzz.errors import OutputError

#: Prefix of temporary files; a killed run may leave some, and they are ignored.
TEMP_PREFIX = ".tmp-"
#: Largest safetensors header nnfuzz reads; a bigger one is not a file it wrote.
MAX_HEADER_BYTES = 16 * 1024 * 1024


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either old or whole."""
    try:
        descriptor, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                # mkstemp makes 0600 files: give the file the mode a plain open() would, so
                # that CI artifact uploaders and shared caches running as others can read it.
                os.fchmod(handle.fileno(), FILE_MODE & ~_umask())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise OutputError(write_failure(path, error)) from None


#: The mode of a new file before the umask, as open() creates it.
FILE_MODE = 0o666


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(path: Path, error: OSError) -> str:
    """The one-line message for a failed write, with what to do about it."""
    if error.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full: free space or choose another --out."
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied: make the folder writable or choose another --out."
    return f"cannot write {path}: {error.strerror or error}: choose another --out."


def content_hash(inputs: Inputs) -> str:
    """A hash of the inputs' dtypes, shapes and bytes: equal inputs, equal names."""
    digest = hashlib.sha256()
    for tensor in inputs:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tensor_file_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    # A copy each: safetensors refuses tensors that share memory (an input that is its own seed).
    cpu = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in tensors.items()}
    return save_safetensors(cpu, metadata=metadata)


def read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file.

    Raises ValueError with a short reason when the file is not one.
    """
    return read_tensor_bytes(path.read_bytes())


def read_tensor_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of safetensors bytes; ValueError when they are not."""
    if len(data) < 8:
        raise ValueError("the file is too short to be safetensors")
    header_size = int.from_bytes(data[:8], "little")
    if header_size > MAX_HEADER_BYTES or 8 + header_size > len(data):
        raise ValueError("its safetensors header is too large or truncated")
    try:
        header = json.loads(data[8:8 + header_size])
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, RuntimeError) as error:
        raise ValueError(f"it is not a valid safetensors file ({error})") from None
    metadata = header.get("__metadata__") or {} if isinstance(header, dict) else {}
    if not isinstance(metadata, dict):
        raise ValueError("its metadata is not a mapping of strings")
    return tensors, {str(k): str(v) for k, v in metadata.items()}


#: Metadata key of the inputs' keyword names, in order (a JSON list), for named inputs.
NAMES_KEY = "input_names"


def names_in(metadata: dict[str, str]) -> Names:
    """The keyword names a file's metadata gives its inputs; None for positional inputs."""
    if NAMES_KEY not in metadata:
        return None
    try:
        names = json.loads(metadata[NAMES_KEY])
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"its metadata {NAMES_KEY!r} is not a list of input names")
    return tuple(names)


def input_tensors(inputs: Inputs, names: Names, prefix: str) -> dict[str, torch.Tensor]:
    """Tensors to save: ``prefix.<name>`` for named inputs, else ``prefix.0``, ``prefix.1``, ..."""
    keys = names if names is not None else [str(i) for i in range(len(inputs))]
    return {f"{prefix}.{key}": tensor for key, tensor in zip(keys, inputs)}


def names_metadata(names: Names) -> dict[str, str]:
    return {NAMES_KEY: json.dumps(list(names))} if names is not None else {}


def saved_inputs(tensors: dict[str, torch.Tensor], metadata: dict[str, str], prefix: str) -> Inputs:
    """The inputs saved under ``prefix`` (by :func:`input_tensors`), in their order;
    ValueError when some are missing."""
    names = names_in(metadata)
    if names is None:
        return numbered(tensors, prefix)
    missing = [name for name in names if f"{prefix}.{name}" not in tensors]
    if missing:
        raise ValueError(f"it has no tensor {prefix}.{missing[0]}")
    return tuple(tensors[f"{prefix}.{name}"] for name in names)


def numbered(tensors: dict[str, torch.Tensor], prefix: str) -> Inputs:
    """``prefix.0``, ``prefix.1``, ... as a tuple; ValueError when there are none or gaps."""
    count = sum(1 for name in tensors if name.startswith(prefix + "."))
    names = [f"{prefix}.{i}" for i in range(count)]
    if count == 0 or any(name not in tensors for name in names):
        raise ValueError(f"it has no tensors {prefix}.0, {prefix}.1, ...")
    return tuple(tensors[name] for name in names)


def read_input_file(path: Path) -> tuple[Inputs, dict[str, str]]:
    """One corpus input (without batch dimension) from .safetensors or .npy, and its
    metadata (which names the inputs, for named ones: :func:`names_in`)."""
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"it is not a valid .npy file ({error or 'empty'})") from None
        if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
            array.close()
            raise ValueError("it is an .npz archive, not a .npy array: save one array per file")
        try:
            # Native byte order: torch holds only that; a big-endian file is converted.
            native = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))
            return (torch.from_numpy(native),), {}
        except (TypeError, ValueError) as error:
            raise ValueError(f"its values ({array.dtype}) are not numbers a tensor can hold "
                             f"({error})") from None
    tensors, metadata = read_tensor_file(path)
    return saved_inputs(tensors, metadata, "input"), metadata


def ensure_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot use {path}: it exists and is not a folder: "
                          "choose another --out.") from None
    except OSError as error:
        raise OutputError(write_failure(path, error)) from None
