"""The training engine (nnfuzz.drivers.engine.Engine): trajectories of optimizer steps,
coverage-guided.

One ``step`` takes a trajectory from the corpus (at first the empty one), trains a fresh copy
of the model along it (states are re-derived by replaying, so memory stays bounded), then
extends it by a few steps: each a random batch of training examples, as they are or moved
along the sign of the loss's gradient with respect to their inputs (GRIST's move: a loss
pushed up pushes the weights toward where it breaks). Every step is judged; a failure goes
to the sink with the whole trajectory. A trajectory whose end state (loss, gradient and
parameter norms) lies farther than the threshold from every state kept joins the corpus.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.engine import EngineStart, FailureSink, Progress, StartUp
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target
from nnfuzz.training.setup import TrainConfig, describe, state_sha256, training_set
from nnfuzz.training.state import Broken, TrainingState
from nnfuzz.training.trajectory import Step, Trajectory
from nnfuzz.version import __version__

#: How far apart two training states must lie (log10 units of loss and norms) to both be kept.
THRESHOLD = 0.05
#: Trajectories kept, at most: past it, only states farther than twice the threshold join.
MAX_CORPUS = 512
#: Share of new steps whose batch is moved along a gradient.
GUIDED_SHARE = 0.5
#: What a guided batch is moved toward: a higher loss (GRIST's move) or larger outputs.
DIRECTIONS = ("loss", "saturation")


class Trainer:
    """The engine of ``nnfuzz train``: see the module's docstring. Built by the drivers as
    ``functools.partial(Trainer, training=TrainConfig(...))``."""

    def __init__(self, target: Target, config: FuzzConfig, sink: FailureSink,
                 start: EngineStart = EngineStart(), *, training: TrainConfig = TrainConfig()) -> None:
        config.check()
        training.check()
        self.target, self.config, self.training, self.sink = target, config, training, sink
        self.data = training_set(target)
        self.start_sha256 = state_sha256(target.model)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.corpus = [Trajectory(seed=config.seed)]
        self.kept: list[torch.Tensor] = []
        self.execs = 0
        self.started = time.monotonic()

    # --- the protocol --------------------------------------------------------------------

    def startup(self) -> StartUp:
        return StartUp(domain=tuple(self.data.domain.describe()),
                       domain_warnings=tuple(self.data.domain.warnings(self.target.path is None)),
                       warnings=(), infos=(describe(self.training, self.target) +
                                           f"; {self.data.size} training examples",),
                       threshold=THRESHOLD, threshold_from="training states, log10 units",
                       corpus=len(self.corpus), device="cpu", coverage_layers=())

    def step(self) -> None:
        """Train along a trajectory of the corpus, extend it, judge each new step, keep it if
        its end state is new."""
        parent = self.corpus[int(torch.randint(len(self.corpus), (1,), generator=self.rng))]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(parent.seed)
            state = TrainingState(self.target, self.data, self.training)
            for step in parent.steps:
                state.apply(step)
            self.execs += len(parent)
            new = self._extend(state, parent)
        child = parent.extended(new)
        if len(child) < self.training.max_steps and new and self._novel(state.vector()):
            self.corpus.append(child)

    def _extend(self, state: TrainingState, parent: Trajectory) -> list[Step]:
        new: list[Step] = []
        room = min(self.training.extension, self.training.max_steps - len(parent))
        for _ in range(room):
            step = self._next_step(state)
            broken = state.apply(step)
            self.execs += 1
            new.append(step)
            if broken is not None:
                self._report(broken, state, parent.extended(new))
                break
        return new

    def _next_step(self, state: TrainingState) -> Step:
        size = min(self.training.batch_size, self.data.size)
        indices = torch.randperm(self.data.size, generator=self.rng)[:size]
        plain = Step(indices, tuple(None for _ in self.data.inputs))
        if float(torch.rand((), generator=self.rng)) >= GUIDED_SHARE:
            return plain
        toward = DIRECTIONS[int(torch.randint(len(DIRECTIONS), (), generator=self.rng))]
        gradients = state.input_gradient(plain, toward)
        scale = self.training.guided_step * float(torch.rand((), generator=self.rng))
        deltas = tuple(None if g is None or not field.mutable else
                       (scale * field.width * g.sign()).to(torch.float32)
                       for g, field in zip(gradients, self.data.domain.fields))
        return Step(indices, deltas)

    def _novel(self, vector: torch.Tensor) -> bool:
        if not bool(torch.isfinite(vector).all()):
            return False
        threshold = THRESHOLD if len(self.corpus) < MAX_CORPUS else 2 * THRESHOLD
        if self.kept and float(torch.cdist(vector[None], torch.stack(self.kept)).min()) <= threshold:
            return False
        self.kept.append(vector)
        return True

    def import_shared(self) -> None:
        """Trajectories live in this engine's memory: there is nothing on disk to take in."""

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self.started
        return Progress(execs=self.execs, corpus=len(self.corpus), coverage=len(self.kept),
                        kept_per_min=60 * (len(self.corpus) - 1) / elapsed if elapsed > 0 else 0.0,
                        threshold=THRESHOLD)

    def close(self) -> None:
        """Nothing to release: no hook, no file."""

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- failures ------------------------------------------------------------------------

    def _report(self, broken: Broken, state: TrainingState, trajectory: Trajectory) -> None:
        self.sink.hit(broken.signature)
        if self.sink.is_known(broken.signature):
            return
        self.sink.take(self._failure(broken, state, trajectory))

    def _failure(self, broken: Broken, state: TrainingState, trajectory: Trajectory) -> Failure:
        """The failing step's batch as the input (as it was moved) and its seed (as it is),
        the whole trajectory as the reproducer's extra tensors."""
        last = trajectory.steps[-1]
        moved, labels = state.batch(last)
        plain = tuple(t[last.indices] for t in self.data.inputs)
        return Failure(
            inputs=tuple(t.detach().cpu() for t in moved),
            seed=tuple(t.detach().cpu() for t in plain), objective="nonfinite",
            detail=broken.detail, signature=broken.signature,
            label=labels.detach().cpu(), names=self.data.names, extra=trajectory.tensors(),
            metadata={"engine": "train", "nnfuzz_version": __version__,
                      "torch_version": torch.__version__, "target_sha256": self.target.sha256,
                      "start_sha256": self.start_sha256, "run_seed": str(self.config.seed),
                      "trajectory_seed": str(trajectory.seed), "steps": str(len(trajectory)),
                      "perturbed_steps": str(sum(s.perturbed for s in trajectory.steps)),
                      "found_after_execs": str(self.execs),
                      "found_after_s": f"{time.monotonic() - self.started:.3f}",
                      **self.training.metadata()})
