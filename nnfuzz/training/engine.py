"""The training engine (nnfuzz.drivers.engine.Engine): trajectories of optimizer steps,
coverage-guided.

One ``step`` takes a trajectory from the corpus, perhaps mutates it (cut back to an earlier
step, or one hyperparameter drawn anew), trains a fresh copy of the model along it (states
are re-derived by replaying, so memory stays bounded), then extends it by a few steps: each
a random batch of training examples, some with other examples' labels (label noise), as
they are or moved along the sign of a gradient with respect to their inputs (GRIST's move:
a loss pushed up pushes the weights toward where it breaks). The empty trajectory starts
fresh ones, each with its own run seed and hyperparameters (the defaults, or a draw within
the target's ``HYPERPARAMETERS``). Every new step is judged by the training objectives; a
failure goes to the sink with the whole trajectory. A trajectory whose end state (loss,
gradient and parameter norms, the probe's loss and dead ReLU shares) lies farther than the
threshold from every state kept (the fuzz loop's faiss novelty index) joins the corpus.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from nnfuzz.config import FuzzConfig
from nnfuzz.coverage import NoveltyIndex
from nnfuzz.drivers.engine import EngineStart, FailureSink, Progress, StartUp
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target
from nnfuzz.training import hyperparameters
from nnfuzz.training.corpus import TrajectoryFolder
from nnfuzz.training.objectives import Broken, Judge
from nnfuzz.training.replay import train_along, trajectory_failure
from nnfuzz.training.setup import TrainConfig, describe, state_sha256, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Step, Trajectory

#: How far apart two training states must lie (log10 units of loss and norms) to both be kept.
THRESHOLD = 0.05
#: Trajectories kept, at most: past it, only states farther than twice the threshold join.
MAX_CORPUS = 512
@dataclass(frozen=True)
class Search:
    """How the engine searches. The defaults are nnfuzz train's; the training benchmark
    also runs the searches a user has without it (plain training with reshuffled batches
    and random hyperparameters) and GRIST's move alone, as settings of the same engine."""

    #: Share of new steps whose batch is moved along a gradient.
    guided_share: float = 0.5
    #: Share of guided batches moved the whole width (each input to the bound its gradient
    #: points at), like the fuzz loop's edge operator: some bugs need every input there.
    edge_share: float = 0.25
    #: Share of new steps whose batch has one input position put at one bound in every
    #: example (a feature constant across the batch).
    constant_share: float = 0.1
    #: Share of fresh trajectories that train plainly (no move, no label noise) for their
    #: first 8, 16, ... steps (drawn below --max-steps): weights grown as ordinary training
    #: grows them, which a guided step then breaks.
    plain_prefixes: float = 0.5
    #: What a guided batch is moved toward: a higher loss (GRIST's move) or larger outputs.
    directions: tuple[str, ...] = ("loss", "saturation")
    #: Share of new steps that train some examples (up to half the batch) on other
    #: examples' labels.
    label_noise_share: float = 0.25
    #: Whether trajectories with a new end state are kept (and extended, cut back, given
    #: other hyperparameters); without, every trajectory starts afresh.
    coverage: bool = True
    #: Share of fresh trajectories that train with the default hyperparameters.
    defaults_share: float = 0.5


#: New steps are judged on the probe batch (dead, diverge) every PROBE_EVERY steps and at
#: the end of each extension, so that every kept trajectory ends judged; when the probe
#: fires, the trajectory is re-trained with every step probed to name the first that broke.
#: On examples/train_bce.py probing every step cost ~8% of the run's time.
PROBE_EVERY = 4
PROBED = ("dead", "diverge")
#: Share of trajectories taken from the corpus that are cut back to an earlier step first,
#: and (where HYPERPARAMETERS give ranges) that keep their steps with one value drawn anew.
CUT_SHARE, REDRAW_SHARE = 0.25, 0.1


class Trainer:
    """The engine of ``nnfuzz train``: see the module's docstring. Built by the drivers as
    ``functools.partial(Trainer, training=TrainConfig(...))``."""

    def __init__(self, target: Target, config: FuzzConfig, sink: FailureSink,
                 start: EngineStart = EngineStart(), *, training: TrainConfig = TrainConfig(),
                 search: Search = Search()) -> None:
        config.check()
        training.check()
        self.target, self.config, self.sink, self.search = target, config, sink, search
        self.data = training_set(target)
        self.judge = Judge(target, self.data, training)
        # What a reproducer records: the objectives this run checked, by name.
        self.training = dataclasses.replace(training, objectives=self.judge.on)
        self.start_sha256 = state_sha256(target.model)
        #: The starting weights, saved in every reproducer where model() gives other weights
        #: on each call (replay could not start from them otherwise); None where it does not.
        self.start_state = _start_state(target, self.start_sha256)
        optimizer = TrainingState(target, self.data, training, self.judge).optimizer
        self.ranges, self.defaults = hyperparameters.searched(
            target.hyperparameters, target.origin, optimizer, training.batch_size)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.root = Trajectory(seed=config.seed, hyperparameters=self.defaults)
        self.corpus: list[Trajectory] = [Trajectory(seed=-1)]  # stands for a fresh trajectory
        #: The end states of the kept trajectories (made at the first one: its width).
        self.index: NoveltyIndex | None = None
        self.folder = TrajectoryFolder(start.folder, self.start_sha256, len(self.data.inputs))
        self.resumed = self.import_shared()
        self.execs = 0
        self.started = time.monotonic()

    # --- the protocol --------------------------------------------------------------------

    def startup(self) -> StartUp:
        infos = [describe(self.training, self.target) + f"; {self.data.size} training examples",
                 self.judge.describe()]
        if self.start_state is not None:
            infos.append("model() gives other weights on each call: each reproducer holds the "
                         "starting weights (seed model(), or load a checkpoint, to keep them "
                         "out of it)")
        if self.resumed:
            infos.append(f"resumed {self.resumed} trajectories from the output folder")
        if self.ranges:
            infos.append("hyperparameters searched: " + ", ".join(
                f"{name} in [{low:g}, {high:g}] (default {dict(self.defaults)[name]:g})"
                for name, (low, high) in sorted(self.ranges.items())))
        return StartUp(domain=tuple(self.data.domain.describe()),
                       domain_warnings=tuple(self.data.domain.warnings(self.target.path is None)),
                       warnings=(), infos=tuple(infos),
                       threshold=THRESHOLD, threshold_from="training states, log10 units",
                       corpus=len(self.corpus), device="cpu", coverage_layers=(),
                       record={"engine": "train",
                               "train_options": dataclasses.asdict(self.training),
                               "hyperparameter_ranges": self.ranges})

    def step(self) -> None:
        """Take a trajectory (mutated, or a fresh one), train along it, extend it, judge each
        new step, keep it if its end state is new."""
        parent, rejudge = self._parent()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(parent.seed)
            state = TrainingState(self.target, self.data, self.training, self.judge, parent.values)
            for number, step in enumerate(parent.steps):
                broken = state.apply(step, judged=rejudge)
                self.execs += 1
                if broken is not None:
                    self._report(broken, state, parent.prefix(number + 1))
                    return
            new = self._extend(state, parent)
        child = parent.extended(new)
        vector = state.vector()
        if self.search.coverage and len(child) < self.training.max_steps and new \
                and self._novel(vector):
            self.corpus.append(child)
            self.folder.save(child, vector)

    def _parent(self) -> tuple[Trajectory, bool]:
        """A trajectory to extend, and whether its steps must be judged again (where its
        hyperparameters were drawn anew: the same steps train otherwise)."""
        parent = self.corpus[int(torch.randint(len(self.corpus), (1,), generator=self.rng))]
        if not parent.steps:
            return self._fresh(), False
        draw = float(torch.rand((), generator=self.rng))
        if draw < CUT_SHARE:
            return parent.prefix(int(torch.randint(len(parent), (1,), generator=self.rng))), False
        if self.ranges and draw < CUT_SHARE + REDRAW_SHARE:
            values = parent.values
            name = sorted(self.ranges)[int(torch.randint(len(self.ranges), (1,), generator=self.rng))]
            values[name] = dict(hyperparameters.draw({name: self.ranges[name]}, self.rng))[name]
            return dataclasses.replace(parent, hyperparameters=tuple(sorted(values.items()))), True
        return parent, False

    def _fresh(self) -> Trajectory:
        """The first trajectory trains at the run seed with the defaults; later ones draw a
        seed of their own (dropout) and, some, hyperparameters within the ranges."""
        if self.execs == 0:
            return self.root
        seed = int(torch.randint(2**31 - 1, (1,), generator=self.rng))
        fresh = float(torch.rand((), generator=self.rng)) >= self.search.defaults_share \
            and self.ranges
        values = hyperparameters.draw(self.ranges, self.rng) if fresh else self.defaults
        plain_until = 0
        if float(torch.rand((), generator=self.rng)) < self.search.plain_prefixes:
            blocks = max(1, self.training.max_steps // self.training.extension)
            plain_until = self.training.extension * int(torch.randint(1, blocks + 1, (1,),
                                                                       generator=self.rng))
        return Trajectory(seed=seed, hyperparameters=values, plain_until=plain_until)

    def _extend(self, state: TrainingState, parent: Trajectory) -> list[Step]:
        new: list[Step] = []
        room = min(self.training.extension, self.training.max_steps - len(parent))
        size = min(hyperparameters.batch_size(parent.values, self.training.batch_size),
                   self.data.size)
        for number in range(room):
            step = self._next_step(state, size, len(parent) + number < parent.plain_until)
            probe = (number + 1) % PROBE_EVERY == 0 or number == room - 1
            broken = state.apply(step, probe=probe)
            self.execs += 1
            new.append(step)
            if broken is not None:
                trajectory = parent.extended(new)
                if broken.objective in PROBED:  # which step since the last probe was first
                    broken = train_along(self.target, trajectory, self.training) or broken
                    trajectory = trajectory.prefix(broken.step)
                self._report(broken, state, trajectory)
                break
        return new

    def _next_step(self, state: TrainingState, size: int, plain: bool = False) -> Step:
        indices = torch.randperm(self.data.size, generator=self.rng)[:size]
        if plain:
            return Step(indices, tuple(None for _ in self.data.inputs))
        labels = None
        if float(torch.rand((), generator=self.rng)) < self.search.label_noise_share:
            share = 0.5 * float(torch.rand((), generator=self.rng))
            donors = torch.randint(self.data.size, (size,), generator=self.rng)
            labels = torch.where(torch.rand(size, generator=self.rng) < share, donors, indices)
        plain = Step(indices, tuple(None for _ in self.data.inputs), labels)
        if float(torch.rand((), generator=self.rng)) < self.search.constant_share:
            return Step(indices, self._constant_feature(indices), labels)
        if float(torch.rand((), generator=self.rng)) >= self.search.guided_share:
            return plain
        directions = self.search.directions
        toward = directions[int(torch.randint(len(directions), (), generator=self.rng))]
        gradients = state.input_gradient(plain, toward)
        scale = self.training.guided_step * float(torch.rand((), generator=self.rng))
        if float(torch.rand((), generator=self.rng)) < self.search.edge_share:
            scale = 1.0  # the edge move: every input to the bound its gradient points at
        deltas = tuple(None if g is None or not field.mutable else
                       (scale * field.width * g.sign()).to(torch.float32)
                       for g, field in zip(gradients, self.data.domain.fields))
        return Step(indices, deltas, labels)

    def _constant_feature(self, indices: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Moves that put one value of each example (the same position in each) at the same
        bound across the batch: a feature that is constant in a batch (a missing value, a
        padded position), which a normalisation by the batch's spread divides by."""
        deltas: list[torch.Tensor | None] = []
        for tensor, field in zip(self.data.inputs, self.data.domain.fields):
            batch = tensor[indices]
            if not field.mutable or batch[0].numel() == 0:
                deltas.append(None)
                continue
            flat = batch.reshape(batch.shape[0], -1).to(torch.float32)
            position = int(torch.randint(flat.shape[1], (1,), generator=self.rng))
            bound = field.low if float(torch.rand((), generator=self.rng)) < 0.5 else field.high
            delta = torch.zeros_like(flat)
            delta[:, position] = float(bound) - flat[:, position]
            deltas.append(delta.reshape(batch.shape))
        return tuple(deltas)

    def _novel(self, vector: torch.Tensor) -> bool:
        """Whether ``vector`` lies farther than the threshold from every state kept (twice it
        once the corpus is full); kept if so. The fuzz loop's novelty index (faiss)."""
        if not bool(torch.isfinite(vector).all()):
            return False
        if self.index is None:
            self.index = NoveltyIndex(vector.numel())
        if vector.numel() != self.index.dim:  # a state saved by another version's engine
            return False
        point = vector[None].numpy()
        threshold = THRESHOLD if len(self.corpus) < MAX_CORPUS else 2 * THRESHOLD
        if float(self.index.nearest(point)[0]) <= threshold:
            return False
        self.index.add(point)
        return True

    def import_shared(self) -> int:
        """Take in the trajectories saved in the output folder that this engine has not seen
        (a killed run's, other workers'); how many."""
        new = [(trajectory, vector) for trajectory, vector in self.folder.new()
               if self.index is None or vector.numel() == self.index.dim]
        for trajectory, vector in new:
            if self.index is None:
                self.index = NoveltyIndex(vector.numel())
            self.corpus.append(trajectory)
            self.index.add(vector[None].numpy())
        return len(new)

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self.started
        return Progress(execs=self.execs, corpus=len(self.corpus), coverage=len(self.index or ()),
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
        """A failure to the sink; a non-finite step when --objective left nonfinite out ends
        its trajectory (nothing trains on past a NaN) without a report."""
        if broken.objective not in self.judge.on:
            return
        self.sink.hit(broken.signature)
        if self.sink.is_known(broken.signature):
            return
        self.sink.take(self._failure(broken, state, trajectory))

    def _failure(self, broken: Broken, state: TrainingState, trajectory: Trajectory) -> Failure:
        """The failing step's batch as the input (as it was moved) and its seed (as it is),
        the whole trajectory as the reproducer's extra tensors."""
        return trajectory_failure(broken, state, trajectory, {
            "target_sha256": self.target.sha256, "start_sha256": self.start_sha256,
            "run_seed": str(self.config.seed), "found_after_execs": str(self.execs),
            "found_after_s": f"{time.monotonic() - self.started:.3f}", **self.training.metadata()},
            self.start_state)


def _start_state(target: Target, start_sha256: str) -> dict[str, torch.Tensor] | None:
    """The starting weights when model(), called again, gives other ones (a model() that
    does not seed its initialisation); None when it gives the same or cannot be called."""
    if target.model_factory is None:
        return None
    again = target.model_factory()
    if not isinstance(again, torch.nn.Module) or state_sha256(again) == start_sha256:
        return None
    return {name: tensor.detach().cpu().clone() for name, tensor in target.model.state_dict().items()}
