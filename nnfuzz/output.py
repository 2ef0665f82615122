"""The output folder of a run (the README's *Output folder*).

``run.json`` says what ran, ``stats.jsonl`` how it went, ``corpus/`` holds
the inputs that gave new coverage and ``crashes/`` one reproducer per failure
signature. Running again with the same folder resumes from it.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Any

from nnfuzz.errors import OutputError, ReproducerError, UsageError
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.run_record import RunEntry, RunRecord, read_run_json, recorded_target, runs_of
from nnfuzz.storage import TEMP_PREFIX, atomic_write, ensure_folder, write_failure

#: The file whose advisory lock says a run is using the folder; it holds that run's pid.
LOCK_NAME = ".lock"


def holder_of(path: Path) -> str | None:
    """The pid of the live run that holds ``path``'s lock, or None when no process does (a
    run killed with SIGKILL leaves run.json saying "running", but the kernel drops its
    lock). Takes nothing: the lock, when free, is let go at once."""
    lock_path = path / LOCK_NAME
    if not lock_path.is_file():
        return None
    try:
        with open(lock_path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "unknown"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


class OutputFolder:
    """Reads and writes one run's output folder; every write is atomic."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.corpus = self.path / "corpus"
        self.crashes = self.path / "crashes"
        ensure_folder(self.path)
        self._lock = self._take_lock()
        try:
            for folder in (self.corpus, self.crashes):
                ensure_folder(folder)
            self._check_writable()
            self._remove_temporaries()
            self._repair_stats()
        except BaseException:
            self.close()  # a folder it cannot use is not held (nor its lock file left open)
            raise

    def _take_lock(self) -> Any:
        """One run per folder: an advisory lock on OUT/.lock, held while the run lives. The
        kernel drops it when the process dies, so a killed run's lock never blocks."""
        lock_path = self.path / LOCK_NAME
        try:
            handle = open(lock_path, "a+")
        except OSError as error:
            raise OutputError(write_failure(lock_path, error)) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputError(f"{self.path} is in use by another nnfuzz run (pid {holder}): wait "
                              "for it to stop, or give this run another --out.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def close(self) -> None:
        """Let the next run have the folder."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def stats_jsonl(self) -> Path:
        return self.path / "stats.jsonl"

    def _check_writable(self) -> None:
        probe = self.path / f"{TEMP_PREFIX}probe"
        atomic_write(probe, b"")
        probe.unlink(missing_ok=True)

    def _remove_temporaries(self) -> None:
        """Temp files a killed run left behind never became real files: drop them."""
        for folder in (self.path, self.corpus, self.crashes):
            for leftover in folder.glob(f"{TEMP_PREFIX}*"):
                leftover.unlink(missing_ok=True)

    def _repair_stats(self) -> None:
        """Cut a last line that a killed run left half-written."""
        if not self.stats_jsonl.exists():
            return
        data = self.stats_jsonl.read_bytes()
        if data and not data.endswith(b"\n"):
            atomic_write(self.stats_jsonl, data[:data.rfind(b"\n") + 1])

    def previous_run(self) -> RunRecord | None:
        if not self.run_json.exists():
            return None
        try:
            return read_run_json(self.run_json)
        except (ValueError, OSError):
            warnings.warn(f"{self.run_json} is unreadable; it will be rewritten", stacklevel=2)
            return None

    def earlier_runs(self) -> list[RunEntry]:
        """One entry per earlier run in this folder, oldest first (from run.json)."""
        previous = self.previous_run()
        return [] if previous is None else runs_of(previous)

    @classmethod
    def check_usable(cls, path: Path, target_name: str, target_sha256: str,
                     engine: str = "run") -> None:
        """What makes an existing folder unusable for a run (another run holds it; it holds
        runs of another target, or of the other engine: ``nnfuzz run`` keeps inputs in its
        corpus, ``nnfuzz train`` trajectories), said before the target is loaded: loading a
        model and running its seeds can take many seconds, and the run could not go on."""
        if not path.is_dir():
            return
        folder = cls(path)
        try:
            folder.refuse_other_target(target_name, target_sha256)
            other = (folder.previous_run() or {}).get("engine", "run")
            if other != engine:
                raise OutputError(f"{path} holds nnfuzz {other} runs, and this is nnfuzz "
                                  f"{engine}: use another --out for each.")
        finally:
            folder.close()

    def refuse_other_target(self, target_name: str | None, target_sha256: str) -> None:
        """One folder, one target: a folder of another target is an error."""
        old_path, old_sha = recorded_target(self.previous_run() or {})
        old_name = Path(old_path).name if old_path else None
        if old_name and target_name and old_name != target_name and old_sha != target_sha256:
            raise OutputError(f"{self.path} holds runs of {old_name}, not {target_name}: "
                              "use another --out for each target.")

    def check_resumable(self, target_name: str | None, target_sha256: str, version: str) -> None:
        """Refuse a folder of another target; say so when the target or nnfuzz changed."""
        self.refuse_other_target(target_name, target_sha256)
        previous = self.previous_run()
        if not previous:
            return
        _, old_sha = recorded_target(previous)
        if old_sha and target_sha256 and old_sha != target_sha256:
            warnings.warn(f"{target_name} changed since the last run in {self.path} (sha256 "
                          f"{old_sha[:12]}, now {target_sha256[:12]}): its corpus is reused and "
                          "failures already saved are not reported again", stacklevel=2)
        old_version = previous.get("nnfuzz")
        if old_version != version:
            warnings.warn(f"{self.path} was written by nnfuzz {old_version or 'unknown'}, this is "
                          f"{version}: resuming it", stacklevel=2)

    def known_failures(self) -> dict[str, Path]:
        """Signature -> reproducer path of every failure already saved."""
        return known_failures(self.crashes)

    def save_failure(self, failure: Failure) -> Path:
        return failure.save(self.crashes / failure.file_name)

    def replace_failure(self, old: Failure, new: Failure) -> Path:
        """Save ``new`` and then drop ``old``: a kill in between leaves both, never neither."""
        path = self.save_failure(new)
        if old.path is not None and old.path != path:
            old.path.unlink(missing_ok=True)
        return path

    def write_run(self, record: RunRecord) -> None:
        atomic_write(self.run_json, (json.dumps(record, indent=2, default=str) + "\n").encode())

    def append_stats(self, record: dict[str, Any]) -> None:
        """One line per status interval; a single write, so a kill leaves at most a partial last line."""
        line = (json.dumps(record) + "\n").encode()
        try:
            descriptor = os.open(self.stats_jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
        except OSError as error:
            raise OutputError(write_failure(self.stats_jsonl, error)) from None




def save_minimized(smaller: Failure, original: Path, output: Path | None) -> Path:
    """Save a minimized reproducer over ``original``, or at ``output``.

    Replacing is the default because a crashes folder holds one reproducer per
    signature (``run`` keeps the minimized one too): a second file for the same
    bug would be counted twice by ``report``, ``replay`` and JUnit. ``output``
    keeps the original; it may not land in a folder that already holds another
    reproducer of this signature.
    """
    if output is None or output.resolve() == original.resolve():
        return smaller.save(original)
    other = known_failures(output.parent, quiet=True).get(smaller.signature)
    if other is not None and other.resolve() != output.resolve():
        raise UsageError(f"--output {output}: {output.parent} already holds {other.name} for "
                         f"{smaller.signature!r}, and a folder keeps one reproducer per failure: "
                         "write it to another folder, or leave --output out to replace the original.")
    ensure_folder(output.parent)
    return smaller.save(output)


def reproducers_in(crashes: Path) -> list[tuple[Path, Failure | None, str]]:
    """Every reproducer file of ``crashes`` in name order, loaded, or None and why not.
    Every reader of crashes/ (resume, workers, report) goes through here."""
    found: list[tuple[Path, Failure | None, str]] = []
    for path in sorted(crashes.glob("*.safetensors")) if crashes.is_dir() else []:
        try:
            found.append((path, load_failure(path), ""))
        except ReproducerError as error:
            found.append((path, None, str(error)))
    return found


def known_failures(crashes: Path, *, quiet: bool = False) -> dict[str, Path]:
    """Signature -> reproducer path of every reproducer in ``crashes``; others are skipped."""
    known: dict[str, Path] = {}
    for path, failure, error in reproducers_in(crashes):
        if failure is not None:
            known.setdefault(failure.signature, path)
        elif not quiet:
            warnings.warn(f"skipped {error}", stacklevel=2)
    return known
