"""Re-training a saved trajectory: does the step where it broke still break?

A training reproducer holds the starting weights' hash, the options it trained with, the
trajectory's seed and every step (nnfuzz.training.trajectory). Replay trains a fresh copy of
the target's model along it and judges every step, as the engine did.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from nnfuzz.errors import NnfuzzError
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target
from nnfuzz.training.objectives import Broken, Judge
from nnfuzz.training.setup import TrainConfig, state_sha256, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Trajectory
from nnfuzz.version import __version__


def is_training(failure: Failure) -> bool:
    return failure.metadata.get("engine") == "train"


def trajectory_of(failure: Failure, inputs: int) -> Trajectory:
    return Trajectory.from_saved(failure.extra, failure.metadata, inputs, str(failure.path))


#: The prefix of a reproducer's extra tensors that hold the starting weights, saved where
#: model() gives other weights on each call.
START = "start."


def saved_start(failure: Failure) -> dict[str, torch.Tensor]:
    """The starting weights a reproducer holds (empty where model() is deterministic)."""
    return {key[len(START):]: value for key, value in failure.extra.items()
            if key.startswith(START)}


def starting_target(target: Target, failure: Failure) -> Target:
    """``target`` with the starting weights the reproducer was found from: its saved ones
    (a model() that is not deterministic), else model()'s own, which must hash the same (an
    NnfuzzError when they do not)."""
    saved = saved_start(failure)
    if saved:
        model = copy.deepcopy(target.model)
        model.load_state_dict(saved)
        return dataclasses.replace(target, model=model)
    started = state_sha256(target.model)
    if started != failure.metadata.get("start_sha256", started):
        raise NnfuzzError("model() gave other starting weights than the run that found it "
                          "(its weights' hash differs): seed the initialisation in model(), or "
                          "load a checkpoint, so that training starts from the same state.")
    return target


def retrain(target: Target, failure: Failure) -> Broken | None:
    """Train a fresh copy of ``target``'s model, from the reproducer's starting weights, along
    its trajectory; the first step that breaks, or None when none does."""
    target = starting_target(target, failure)
    data = training_set(target)
    trajectory = trajectory_of(failure, len(data.inputs))
    config = TrainConfig.from_metadata(failure.metadata, str(failure.path))
    return train_along(target, trajectory, config)


def train_along(target: Target, trajectory: Trajectory, config: TrainConfig) -> Broken | None:
    """Train a fresh copy along ``trajectory``, every step judged; the first that breaks."""
    data = training_set(target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trajectory.seed)
        state = TrainingState(target, data, config, Judge(target, data, config), trajectory.values)
        for step in trajectory.steps:
            broken = state.apply(step)
            if broken is not None:
                return broken
    return None


def trajectory_failure(broken: Broken, state: TrainingState, trajectory: Trajectory,
                       metadata: dict[str, str],
                       start: dict[str, torch.Tensor] | None = None) -> Failure:
    """A training reproducer of ``trajectory``, whose last step broke: that step's batch as
    the input (as it was moved), its examples as they are as the seed, the labels it trained
    with, the whole trajectory as extra tensors; ``metadata`` (the run's, or the reproducer
    it was minimized from) with the trajectory's own and the versions said anew. The engine
    and the minimizer (nnfuzz.training.shrink) both build one, so that both replay alike."""
    last = trajectory.steps[-1]
    moved, labels = state.batch(last)
    plain = tuple(t[last.indices] for t in state.data.inputs)
    return Failure(
        inputs=tuple(t.detach().cpu() for t in moved),
        seed=tuple(t.detach().cpu() for t in plain), objective=broken.objective,
        detail=broken.detail, signature=broken.signature,
        label=labels.detach().cpu(), names=state.data.names,
        extra={**trajectory.tensors(), **{START + k: v for k, v in (start or {}).items()}},
        metadata={**metadata, "engine": "train", "nnfuzz_version": __version__,
                  "torch_version": torch.__version__, **trajectory.metadata()})
