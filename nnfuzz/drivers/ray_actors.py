"""``--ray auto|ADDRESS --workers N``: the workers as Ray actors, across a cluster.

Ray (the optional extra ``nnfuzz[ray]``) runs them; nnfuzz does not invent a
distributed system. The target's folder travels to every node as Ray's
``working_dir``; each actor is an ordinary engine with a private corpus folder,
working in slices. After each slice it hands the driver its news (the messages of
nnfuzz.drivers.messages: failures as reproducer bytes, never pickled tensors) and its
new corpus files, and the driver writes them into ``OUT/`` and passes each actor the
files the others found. So a cluster run leaves the same output folder as a local one,
whether or not the nodes share a file system. An actor that dies is replaced by a new
one given the whole corpus: nothing it sent is lost.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from nnfuzz.config import Deadline, FuzzConfig, StopReason, stop_reason
from nnfuzz.corpus_files import CorpusFolder
from nnfuzz.drivers.engine import EngineFactory, EngineStart, Relay, Resume, StartUp, run_slice
from nnfuzz.drivers.messages import Done, Found, Message, Slice, Status
from nnfuzz.drivers.pool import MAX_RESTARTS, Pool
from nnfuzz.errors import NnfuzzError, UsageError
from nnfuzz.loop import Fuzzer
from nnfuzz.status import Reporter
from nnfuzz.tracking import Tracker
from nnfuzz.target import Target

#: Seconds an actor works between two exchanges with the driver.
SLICE_SECONDS = 1.0
RAY_EXTRA = "pip install 'nnfuzz[ray]'"
#: Seconds to wait for a Ray head at HOST:PORT to answer.
CONNECT_TIMEOUT = 5.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


class RayWorker:
    """One worker, run by Ray as an actor (on whichever node Ray places it). Its deadline
    comes as the seconds left (another machine's clock is another)."""

    def __init__(self, index: int, target_name: str, config: FuzzConfig,
                 corpus: dict[str, bytes], threads: int, resume: Resume | None,
                 seconds_left: float | None, engine: EngineFactory) -> None:
        import torch

        from nnfuzz.target import load_target

        torch.set_num_threads(threads)
        self.index, self.config = index, config
        self.deadline = Deadline.after(seconds_left)
        self.folder = Path(tempfile.mkdtemp(prefix=f"nnfuzz-ray-{index}-"))
        self.corpus = self.folder / "corpus"
        self.corpus.mkdir()
        self.corpus_folder = CorpusFolder(self.corpus)
        self._write(corpus)
        #: News since the driver's last call.
        self.news: list[Message] = []
        self.sink = Relay(lambda data: self.news.append(Found(index, data)))
        # Ray starts the actor in the target's folder (its working_dir).
        target = load_target(Path(os.getcwd()) / target_name, need_seeds=False)
        self.engine = engine(target, config, self.sink,
                             EngineStart(folder=self.corpus, resume=resume,
                                         deadline=self.deadline))
        self.sent = set(self.corpus_folder.names())

    def startup(self) -> StartUp:
        """This actor's start-up facts, for the parent's Campaign."""
        return self.engine.startup()

    def _stop(self, execs: int) -> StopReason | None:
        return stop_reason(self.config, execs, found=self.sink.sent > 0, deadline=self.deadline)

    def work(self, incoming: dict[str, bytes], known: list[str]) -> Slice:
        """Take in the others' files and the failures already saved, work a slice, report."""
        self._write(incoming)
        self.sent.update(incoming)
        self.sink.known.update(known)
        self.engine.import_shared()
        reason = run_slice(self.engine, SLICE_SECONDS, self._stop)
        new = {name: self.corpus_folder.read_bytes(name) for name in self.corpus_folder.names()
               if name not in self.sent}
        self.sent.update(new)
        progress = self.engine.progress()
        last = (Status(self.index, progress) if reason is None else
                Done(self.index, progress, dict(self.sink.hits)))
        news, self.news = (*self.news, last), []
        return Slice(news=news, files=new, hits=dict(self.sink.hits))

    def _write(self, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.corpus_folder.save_bytes(name, data)


def _check_reachable(address: str) -> None:
    """Fail at once on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # auto, local, ray://...: Ray resolves those itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise UsageError(f"--ray {address}: cannot reach a Ray cluster ({error}): start one "
                         "with 'ray start --head', or use --ray auto or --ray local.") from None


class RayPool(Pool):
    """The driver of a --ray run: actors fuzz, the driver keeps OUT/ and relays corpus files."""

    def __init__(self, target: Target, config: FuzzConfig, out: Path, corpus: Path | None,
                 count: int, address: str, reporter: Reporter,
                 engine: EngineFactory = Fuzzer, tracker: Tracker | None = None) -> None:
        if corpus is not None:
            raise UsageError("--corpus with --ray: merge it into OUT/corpus first "
                             "(nnfuzz corpus merge TARGET OUT/corpus DIR), then run.")
        self.ray = import_ray()  # before the output folder is taken: nothing to release
        super().__init__(target, config, out, count, None, reporter, engine, tracker)
        self.address = address
        self.actors: dict[int, Any] = {}
        self.configs: dict[int, FuzzConfig] = {}
        self.pending: dict[Any, int] = {}
        #: Corpus files each actor has not been given yet.
        self.outbox: dict[int, dict[str, bytes]] = {}
        self.restarts: dict[int, int] = {}
        self.stopping = False

    def _start_all(self) -> None:
        ray = self.ray
        _check_reachable(self.address)
        try:
            ray.init(address=None if self.address == "local" else self.address,
                     runtime_env={"working_dir": str(self.target.path.parent)},  # type: ignore[union-attr]
                     log_to_driver=False, include_dashboard=False, ignore_reinit_error=True,
                     logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UsageError(f"--ray {self.address}: cannot reach a Ray cluster ({error}): start "
                             "one with 'ray start --head', or use --ray local.") from None
        # nnfuzz restarts a dead actor itself (_lost), with the whole corpus: not Ray.
        self.remote = ray.remote(num_cpus=1, max_restarts=0)(RayWorker)
        for index, config in enumerate(self.worker_configs()):
            self._start(index, config)
        self._started(ray.get(self.actors[0].startup.remote()))

    def _start(self, index: int, config: FuzzConfig) -> None:
        self.configs[index] = config
        start = self.campaign.engine_start()
        left = start.deadline.left()
        actor = self.remote.remote(index, self.target.path.name, config,  # type: ignore[union-attr]
                                   self._corpus_files(), config.threads or 1, start.resume,
                                   None if left is None else max(0.1, left), self.engine)
        self.actors[index] = actor
        self.outbox[index] = {}
        self._submit(index)

    def _corpus_files(self) -> dict[str, bytes]:
        return CorpusFolder(self.campaign.out.corpus).files()  # type: ignore[union-attr]

    def _submit(self, index: int) -> None:
        incoming, self.outbox[index] = self.outbox[index], {}
        reference = self.actors[index].work.remote(incoming, list(self.campaign.known))
        self.pending[reference] = index

    def _request_stop(self) -> None:
        self.stopping = True

    def _wait(self, timeout: float) -> None:
        if not self.pending:
            return
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        for reference in ready:
            index = self.pending.pop(reference)
            try:
                result = self.ray.get(reference)
            except self.ray.exceptions.RayActorError as error:
                self._lost(index, error)
                continue
            except self.ray.exceptions.RayTaskError as error:
                self.error = NnfuzzError(f"worker {index} failed: {str(error).splitlines()[-1]}")
                continue
            self._take(index, result)

    def _take(self, index: int, result: Slice) -> None:
        for name, data in result.files.items():
            CorpusFolder(self.campaign.out.corpus).save_bytes(name, data)  # type: ignore[union-attr]
            for other in self.outbox:
                if other != index:
                    self.outbox[other][name] = data
        for message in result.news:
            self._hear(message)
        if index in self.finished:
            return
        if self.stopping:  # its last slice: what it did so far is all it did
            last = result.news[-1]
            self._hear(Done(index, last.progress, result.hits))  # type: ignore[union-attr]
        else:
            self._submit(index)

    def _lost(self, index: int, error: Exception) -> None:
        """A dead actor is replaced by a new one that starts from the whole corpus."""
        self.restarts[index] = self.restarts.get(index, 0) + 1
        if self.restarts[index] > MAX_RESTARTS or self.stopping:
            self.error = NnfuzzError(f"worker {index} died {self.restarts[index]} times on Ray "
                                     f"({type(error).__name__}): run without --ray to see why.")
            return
        warnings.warn(f"worker {index} died on Ray; restarting it", stacklevel=2)
        self._start(index, self.restarted_config(self.configs[index], index, self.restarts[index]))

    def _stop_all(self, grace: float) -> None:
        self.stopping = True
        deadline = time.monotonic() + grace
        while self.pending and time.monotonic() < deadline and self.error is None:
            self._wait(timeout=0.5)
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.ray.shutdown()
