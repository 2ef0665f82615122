"""The corpus: inputs worth mutating again, each with its lineage.

Every element knows its *root* (the seed it descends from, or itself when it
came from a folder without a known seed) and its depth (how many mutations
separate it from the root). The root bounds the distance with ``--radius``
and names the seed in a reproducer. Sampling favours recent elements, as
TensorFuzz does: new coverage is where the search is going.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch

from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.domain import Domain, Inputs
from nnfuzz.errors import CorpusError
from nnfuzz.lineage import Batch
from nnfuzz.storage import content_hash

#: Share of each batch drawn from the most recent elements; the rest is uniform.
RECENT_SHARE = 0.5
#: How many of the newest elements count as recent.
RECENT_WINDOW = 64


#: Past a cap, eviction brings the corpus down to this share of it: evicting a little at
#: a time would compact the corpus at every batch.
EVICT_TO = 0.9
#: A corpus's rows are reserved up to this many bytes per tensor when it is made. On
#: the CPU, memory that is reserved but not yet written is not resident: the corpus
#: grows into it without ever copying itself, where doubling a buffer holds the old
#: and the new copy at once (it made the peak resident memory 2x the corpus).
RESERVED_BYTES = 4 << 30


class _Rows:
    """A tensor that grows along its first dimension, doubling its capacity when full."""

    def __init__(self, like: torch.Tensor) -> None:
        self.data = _reserve(like, max(16, like.shape[0]))
        self.count = 0

    def extend(self, rows: torch.Tensor) -> None:
        needed = self.count + rows.shape[0]
        if needed > self.data.shape[0]:
            grown = torch.empty((max(needed, 2 * self.data.shape[0]), *self.data.shape[1:]),
                                dtype=self.data.dtype, device=self.data.device)
            grown[:self.count] = self.data[:self.count]
            self.data = grown
        self.data[self.count:needed] = rows.to(self.data.device)
        self.count = needed

    def view(self) -> torch.Tensor:
        return self.data[:self.count]

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (in order), in place."""
        kept = self.data[:self.count][rows.to(self.data.device)].clone()
        self.data[:len(kept)] = kept
        self.count = len(kept)


def _reserve(like: torch.Tensor, at_least: int) -> torch.Tensor:
    """An empty (N, ...) tensor like ``like``: on the CPU, N is as many rows as
    RESERVED_BYTES hold (address space, not memory, until written)."""
    row_bytes = max(1, like[0:1].numel() * like.element_size())
    rows = at_least
    if like.device.type == "cpu":
        rows = max(at_least, RESERVED_BYTES // row_bytes)
    try:
        return torch.empty((rows, *like.shape[1:]), dtype=like.dtype, device=like.device)
    except RuntimeError:  # no overcommit here: reserve only what is needed
        return torch.empty((at_least, *like.shape[1:]), dtype=like.dtype, device=like.device)


class Corpus:
    """Seeds and the inputs that gave new coverage, in memory; mirrored in a folder when
    given one, whose files it saves, deletes and reads through that CorpusFolder alone."""

    def __init__(self, domain: Domain, seeds: Inputs, *, folder: CorpusFolder | None = None,
                 device: torch.device | None = None) -> None:
        self.domain = domain
        self.folder = folder
        self.device = device or seeds[0].device
        self.seed_count = seeds[0].shape[0]
        seeds = tuple(t.to(self.device) for t in seeds)
        self._roots = [_Rows(t) for t in seeds]
        self._elements = [_Rows(t) for t in seeds]
        #: The bytes of one element's tensors (stored_bytes, asked at every batch).
        self._row_bytes = sum(math.prod(t.shape[1:]) * t.element_size() for t in seeds)
        self._root_of = _Rows(torch.zeros(1, dtype=torch.long, device=self.device))
        self._depth = _Rows(torch.zeros(1, dtype=torch.long, device=self.device))
        #: Coverage vectors of the elements, once the coverage was primed (set_vectors).
        self._vectors: _Rows | None = None
        #: Content hashes of every element, as bytes: hex strings took twice the memory.
        self._hashes: set[bytes] = set()
        #: Each element's content hash, in order, and how many of its children were kept:
        #: what eviction weighs (see evict).
        self._element_hashes: list[bytes] = []
        self._children_kept = _Rows(torch.zeros(1, dtype=torch.long, device=self.device))
        #: Names of the shared folder's files already looked at (new_in_folder).
        self._looked_at: set[str] = set()
        self._root_hashes: dict[str, int] = {}
        self._add_roots(seeds)
        self._hashes.update(self._element_hashes)
        if folder is not None:
            folder.create()

    def __len__(self) -> int:
        return self._depth.count

    # --- growing -------------------------------------------------------------------

    def _add_roots(self, inputs: Inputs, vectors: torch.Tensor | None = None,
                   digests: list[bytes] | None = None) -> None:
        """Add inputs as their own roots (seeds, or files of unknown descent)."""
        first = self._roots[0].count
        for rows, tensor in zip(self._roots, inputs):
            rows.extend(tensor)
        roots = torch.arange(first, first + inputs[0].shape[0], device=self.device)
        hexes = self._hashes_of(inputs)
        for offset, digest in enumerate(hexes):
            self._root_hashes[digest] = first + offset
        self._append(Batch(inputs, roots, torch.zeros_like(roots), vectors),
                     digests or [bytes.fromhex(h) for h in hexes])

    def add(self, batch: Batch) -> int:
        """Add new-coverage inputs; returns how many were new (not already present)."""
        fresh, digests = self._unseen(batch.inputs)
        if not fresh:
            return 0
        if len(fresh) < batch.size:  # (all of them, most often: no copy)
            batch = batch.select(torch.tensor(fresh, dtype=torch.long, device=self.device))
        self._append(batch, digests)
        if self.folder is not None:
            for example in range(batch.size):
                self._save(batch, example)
        return batch.size

    def _append(self, batch: Batch, digests: list[bytes]) -> None:
        for rows, tensor in zip(self._elements, batch.inputs):
            rows.extend(tensor)
        self._root_of.extend(batch.root)
        self._depth.extend(batch.depth)
        self._element_hashes.extend(digests)
        self._children_kept.extend(torch.zeros_like(batch.root))
        if self._vectors is not None:
            if batch.vectors is None:
                self._vectors = None  # an element of unknown coverage: stop tracking them
            else:
                self._vectors.extend(batch.vectors)

    def vectors(self) -> torch.Tensor | None:
        """The coverage vector of every element, in order; None when some are unknown."""
        return self._vectors.view() if self._vectors is not None else None

    def set_vectors(self, vectors: torch.Tensor) -> None:
        """The coverage vector of every element, in order (once the coverage is primed)."""
        if vectors.shape[0] != len(self):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(self)} corpus elements")
        self._vectors = _Rows(vectors)
        self._vectors.extend(vectors)

    def _unseen(self, inputs: Inputs) -> tuple[list[int], list[bytes]]:
        """Rows whose content is new to the corpus (and to each other), and their hashes;
        records them."""
        keep, digests = [], []
        for row, digest in enumerate(map(bytes.fromhex, self._hashes_of(inputs))):
            if digest not in self._hashes:
                self._hashes.add(digest)
                keep.append(row)
                digests.append(digest)
        return keep, digests

    @staticmethod
    def _hashes_of(inputs: Inputs) -> list[str]:
        """Each row's content_hash, from one copy to the host per tensor, not one per row."""
        size = inputs[0].shape[0]
        rows = [_host_rows(t) for t in inputs]
        digests = []
        for row in range(size):
            digest = hashlib.sha256()
            for header, values in rows:
                digest.update(header)
                digest.update(values[row].tobytes())
            digests.append(digest.hexdigest())
        return digests

    def _save(self, batch: Batch, example: int) -> None:
        inputs = tuple(t[example] for t in batch.inputs)
        root = int(batch.root[example])
        root_inputs = tuple(t[0] for t in self.root_inputs(torch.tensor([root])))
        metadata = {"root": content_hash(root_inputs),
                    "mutations": str(int(batch.depth[example]))}
        self.folder.save(inputs, self.domain.names, metadata)  # type: ignore[union-attr]

    # --- bounding it --------------------------------------------------------------------

    def credit(self, parents: torch.Tensor) -> None:
        """The elements (indices) some of whose children were just kept."""
        if len(parents):
            counts = self._children_kept.view()
            counts.index_add_(0, parents.to(counts.device), torch.ones_like(parents, device=counts.device))

    @property
    def stored_bytes(self) -> int:
        """The bytes of every element's tensors (what the corpus files hold, near enough)."""
        return self._row_bytes * len(self)

    def evict(self, max_elements: int | None, max_bytes: float | None) -> int:
        """Keep the corpus within its caps: past one, drop elements down to EVICT_TO of it,
        the least useful first (fewest children kept, then the oldest), never a root (a
        seed, or a file of unknown descent); their files go too. Returns how many went."""
        size = len(self)
        per_element = self.stored_bytes / size if size else 0
        limits = [limit for limit in (max_elements, max_bytes / per_element if max_bytes and per_element
                                      else None) if limit is not None]
        if not limits or size <= min(limits):
            return 0
        target = int(min(limits) * EVICT_TO)
        index = torch.arange(size, device=self.device)
        evictable = (self._depth.view() > 0).nonzero().flatten()
        worth = self._children_kept.view()[evictable].double() + index[evictable].double() / (size + 1)
        victims = evictable[worth.argsort()[:max(0, size - target)]]
        if not len(victims):
            return 0
        keep = torch.ones(size, dtype=torch.bool, device=self.device)
        keep[victims] = False
        gone = [self._element_hashes[i] for i in victims.tolist()]
        rows = keep.nonzero().flatten()
        for column in (*self._elements, self._root_of, self._depth, self._children_kept,
                       *([self._vectors] if self._vectors is not None else [])):
            column.keep(rows)
        self._element_hashes = [self._element_hashes[i] for i in rows.tolist()]
        self._hashes.difference_update(gone)
        if self.folder is not None:
            for digest in gone:
                self.folder.delete(self.folder.name_of(digest.hex()))
        return len(victims)

    # --- reading ---------------------------------------------------------------------

    def sample(self, size: int, rng: torch.Generator) -> Batch:
        """Indices half from the most recent elements, half uniform over all."""
        count = len(self)
        recent = int(size * RECENT_SHARE)
        window = min(RECENT_WINDOW, count)
        picks = torch.cat((
            count - 1 - torch.randint(window, (recent,), generator=rng, device=rng.device),
            torch.randint(count, (size - recent,), generator=rng, device=rng.device),
        )).to(self.device)
        return self._batch(picks)

    def sample_seeds(self, size: int, rng: torch.Generator) -> Batch:
        """Seeds only, uniformly: what random search mutates."""
        picks = torch.randint(self.seed_count, (size,), generator=rng, device=rng.device)
        return self._batch(picks.to(self.device))

    def _batch(self, picks: torch.Tensor) -> Batch:
        return Batch(tuple(rows.view()[picks] for rows in self._elements),
                     self._root_of.view()[picks], self._depth.view()[picks],
                     self._vectors.view()[picks] if self._vectors is not None else None, picks)

    def root_inputs(self, roots: torch.Tensor) -> Inputs:
        roots = roots.to(self.device)
        return tuple(rows.view()[roots] for rows in self._roots)

    def elements(self) -> Inputs:
        return tuple(rows.view() for rows in self._elements)

    def element_root_indices(self) -> torch.Tensor:
        return self._root_of.view()

    def is_seed(self, root: int) -> bool:
        return root < self.seed_count

    # --- folders ---------------------------------------------------------------------

    def load_folder(self, folder: CorpusFolder, *, strict: bool) -> int:
        """Add every input in ``folder``; returns how many files were read.

        Files nnfuzz cannot read are skipped with one warning naming them,
        unless ``strict`` (a folder the user named), where an input of the
        wrong shape is an error.
        """
        if not folder.exists():
            raise CorpusError(f"--corpus {folder.path}: no such folder: give a folder of "
                              ".safetensors or .npy inputs.")
        skipped, loaded = [], 0
        for path, inputs, metadata, problem in folder.scan(self.domain):
            if problem is not None and strict:
                raise problem
            if inputs is None:
                skipped.append(path.name)
                continue
            self._add_loaded(tuple(t.unsqueeze(0).to(self.device) for t in inputs), metadata)
            loaded += 1
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            warnings.warn(f"skipped {len(skipped)} file(s) in {folder.path} that are not nnfuzz inputs: "
                          f"{shown}", stacklevel=2)
        return loaded

    def _add_loaded(self, inputs: Inputs, metadata: dict[str, str],
                    vectors: torch.Tensor | None = None) -> None:
        inputs = self.domain.normalize(_clamped(inputs, self.domain))
        fresh, digests = self._unseen(inputs)
        if not len(fresh):
            return
        root = self.root_of(metadata)
        if root is None:
            self._add_roots(inputs, vectors, digests)
            return
        depth = int(metadata.get("mutations", "1")) if metadata.get("mutations", "").isdigit() else 1
        self._append(Batch(inputs, torch.tensor([root], device=self.device),
                           torch.tensor([depth], device=self.device), vectors), digests)

    def root_of(self, metadata: dict[str, str]) -> int | None:
        """The root a corpus file names (by its content hash), if this corpus has it."""
        return self._root_hashes.get(metadata.get("root", ""))

    # --- sharing a folder with other workers ------------------------------------------

    def new_in_folder(self) -> list[tuple[Inputs, dict[str, str]]]:
        """Inputs (each with a batch dimension of 1) of files that appeared in the corpus's
        folder since the last look, other than its own; files that cannot be used are
        passed over silently (a worker's folder is written by nnfuzz alone)."""
        if self.folder is None:
            return []
        fresh = []
        for path, inputs, metadata, _ in self.folder.scan(self.domain, self._is_new_file):
            self._looked_at.add(path.name)
            if inputs is not None:
                fresh.append((tuple(t.unsqueeze(0).to(self.device) for t in inputs), metadata))
        return fresh

    def _is_new_file(self, name: str) -> bool:
        return name not in self._looked_at and CorpusFolder.digest_of(name) not in self._hashes

    def add_imported(self, found: list[tuple[Inputs, dict[str, str]]],
                     vectors: torch.Tensor) -> None:
        """Add what :meth:`new_in_folder` found, with the coverage vector of each."""
        for (inputs, metadata), vector in zip(found, vectors):
            self._add_loaded(inputs, metadata, vector.unsqueeze(0))


def _host_rows(tensor: torch.Tensor) -> tuple[bytes, np.ndarray]:
    """What storage.content_hash reads of each row of ``tensor`` (B, ...): its dtype and shape,
    and its bytes, (B, bytes per row), in one copy to the host."""
    rows = tensor.detach().cpu().contiguous()
    header = f"{rows.dtype}{tuple(rows.shape[1:])}".encode()
    return header, rows.reshape(rows.shape[0], rows[0:1].numel()).view(torch.uint8).numpy()


def _clamped(inputs: Inputs, domain: Domain) -> Inputs:
    """Inputs from disk are clipped into the bounds, like every mutant."""
    return tuple(f.clamp(t) for t, f in zip(inputs, domain.fields))
