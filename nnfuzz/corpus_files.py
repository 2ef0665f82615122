"""Corpus folders on disk (OUT/corpus, --corpus, corpus merge): one input per file.

Each file is a safetensors file (or a plain ``.npy`` of one unnamed input) named
by its content hash, so an input is kept once however many runs or machines
find it. ``CorpusFolder`` is the one owner of those files: it names, saves
(atomically), deletes and lists them, and reads them raw (Ray's relays) or as
inputs checked against the target's (``scan``); nothing in them is ever
unpickled. The in-memory corpus, the drivers, distillation and the
strategies reach the disk through it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from nnfuzz.domain import Domain, Inputs, Names
from nnfuzz.errors import CorpusError, TargetError
from nnfuzz.storage import (TEMP_PREFIX, atomic_write, content_hash, ensure_folder, input_tensors,
                            names_in, names_metadata, read_input_file, tensor_file_bytes)

#: The files of a corpus folder that hold inputs.
CORPUS_SUFFIXES = (".safetensors", ".npy")
#: The suffix of the files nnfuzz writes.
SAVED_SUFFIX = ".safetensors"

#: One file of a scan: (path, inputs without batch dimension, metadata, problem); inputs is
#: None for a file that is no input (problem None: not an input's suffix) or that cannot be
#: used (problem says why).
Entry = tuple[Path, Inputs | None, dict[str, str], CorpusError | None]


class CorpusFolder:
    """One corpus folder: the one place that names, saves, deletes, lists and reads its files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def create(self) -> None:
        ensure_folder(self.path)

    def exists(self) -> bool:
        return self.path.is_dir()

    @staticmethod
    def name_of(digest: str) -> str:
        """The file of the input whose content hash (hex) is ``digest``."""
        return f"{digest}{SAVED_SUFFIX}"

    @staticmethod
    def digest_of(name: str) -> bytes | None:
        """The content hash a file's name is, if it is one."""
        try:
            return bytes.fromhex(Path(name).stem)
        except ValueError:
            return None

    def save(self, inputs: Inputs, names: Names, metadata: dict[str, str]) -> bool:
        """Save one input (no batch dimension) under its content hash; False when it was there."""
        return self.save_bytes(self.name_of(content_hash(inputs)),
                               lambda: input_file_bytes(inputs, names, metadata))

    def save_bytes(self, name: str, data: bytes | Callable[[], bytes]) -> bool:
        """The one writer of corpus files (runs, merges, Ray's relays): atomic, and once per
        name (names are content hashes, so a file already there holds the same input)."""
        path = self.path / name
        if path.exists():
            return False
        atomic_write(path, data() if callable(data) else data)
        return True

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        """The folder's files, sorted; not the temporary ones (a write under way, or one a
        killed run left behind)."""
        return [path.name for path in self._paths()]

    def read_bytes(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def files(self) -> dict[str, bytes]:
        """Every file's bytes by name: the whole corpus, for a worker on another machine."""
        return {name: self.read_bytes(name) for name in self.names()}

    def scan(self, domain: Domain | None,
             wanted: Callable[[str], bool] | None = None) -> Iterator[Entry]:
        """Each file (whose name ``wanted`` accepts), read and checked against ``domain``:
        see Entry. Named inputs come in the domain's order."""
        for path in self._paths(wanted):
            yield _entry(path, domain)

    def _paths(self, wanted: Callable[[str], bool] | None = None) -> Iterator[Path]:
        # The name is asked before the file system: a worker's look for new files passes
        # over thousands it has seen.
        for path in sorted(self.path.iterdir()):
            if path.name.startswith(TEMP_PREFIX) or (wanted is not None and not wanted(path.name)):
                continue
            if path.is_file():
                yield path


def input_file_bytes(inputs: Inputs, names: Names, metadata: dict[str, str]) -> bytes:
    """A corpus file: one input (no batch dimension), named like the seeds, and its metadata."""
    return tensor_file_bytes(input_tensors(inputs, names, "input"),
                             {**metadata, **names_metadata(names)})


def _entry(path: Path, domain: Domain | None) -> Entry:
    """One file read, and checked against ``domain`` when there is one."""
    if path.suffix not in CORPUS_SUFFIXES:
        return path, None, {}, None
    try:
        inputs, metadata = read_input_file(path)
        if domain is not None:
            batch = domain.arrange(tuple(t.unsqueeze(0) for t in inputs), names_in(metadata),
                                   f"corpus file {path}")
            inputs = tuple(t[0] for t in batch)
    except (ValueError, OSError) as error:
        return path, None, {}, CorpusError(f"corpus file {path}: {error}: remove it or "
                                           "replace it with an input nnfuzz wrote.")
    except CorpusError as error:
        return path, None, {}, error
    return path, inputs, metadata, None


def starting_inputs(seeds: Inputs | None, names: Names,
                    folders: list[Path | None]) -> tuple[Inputs, Names]:
    """The seeds, or, when there are none, the inputs of the first folder with any (and
    their names): what a run starts from and what a folder's inputs must look like."""
    if seeds is not None:
        return seeds, names
    for folder in folders:
        if folder is not None and folder.is_dir():
            found = named_inputs_in_folder(folder)
            if found is not None:
                return found
    raise TargetError("no seeds: define seeds() in the target, or give --corpus DIR "
                      "with at least one input.")


def named_inputs_in_folder(folder: Path) -> tuple[Inputs, Names] | None:
    """The readable inputs of a folder stacked into a batch, and their names.

    Used as the seeds when a target defines no ``seeds()``. Inputs whose
    structure differs from the first readable one are an error.
    """
    rows: list[Inputs] = []
    names: Names = None
    for path, inputs, metadata, _ in CorpusFolder(folder).scan(None):
        if inputs is None:
            continue
        structure = ([(t.shape, t.dtype) for t in inputs], names_in(metadata))
        if rows and structure != ([(t.shape, t.dtype) for t in rows[0]], names):
            raise CorpusError(f"corpus file {path} is shaped unlike {folder}'s other inputs: "
                              "every input of a corpus must have the same shapes and dtypes.")
        rows.append(inputs)
        names = structure[1]
    if not rows:
        return None
    return tuple(torch.stack(column) for column in zip(*rows)), names


def merge_folders(domain: Domain, destination: Path, sources: list[Path]) -> tuple[int, list[str]]:
    """Copy every input of ``sources`` that fits ``domain`` into ``destination``.

    Files are named by content hash, so an input already there (or in two
    sources) is kept once; each keeps its metadata (its seed, its mutations).
    Returns how many were added, and the files skipped (unreadable, or shaped
    unlike the target's inputs). A merge where no source file fits is an error:
    a nightly job that merges corpora of another target (or of an older version
    of this one) must not look as if it worked.
    """
    into = CorpusFolder(destination)
    into.create()
    added, fitting, skipped = 0, 0, []
    for source in sources:
        if not source.is_dir():
            raise CorpusError(f"{source}: no such folder: give corpus folders to merge.")
        for path, inputs, metadata, _ in CorpusFolder(source).scan(domain):
            if inputs is None:
                skipped.append(str(path))
                continue
            fitting += 1
            added += into.save(inputs, domain.names, metadata)
    if not fitting:
        found = (f"none of the {len(skipped)} file(s) in them fits the target's inputs "
                 f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})"
                 if skipped else "they hold no input files")
        raise CorpusError(f"nothing merged from {', '.join(str(s) for s in sources)}: {found}; "
                          "check that the target is the one these corpora were made for.")
    return added, skipped
