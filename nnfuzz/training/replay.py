"""Re-training a saved trajectory: does the step where it broke still break?

A training reproducer holds the starting weights' hash, the options it trained with, the
trajectory's seed and every step (nnfuzz.training.trajectory). Replay trains a fresh copy of
the target's model along it and judges every step, as the engine did.
"""

from __future__ import annotations

import torch

from nnfuzz.errors import NnfuzzError, ReproducerError
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target
from nnfuzz.training.setup import TrainConfig, state_sha256, training_set
from nnfuzz.training.state import Broken, TrainingState
from nnfuzz.training.trajectory import Trajectory


def is_training(failure: Failure) -> bool:
    return failure.metadata.get("engine") == "train"


def trajectory_of(failure: Failure, inputs: int) -> Trajectory:
    try:
        seed, steps = int(failure.metadata["trajectory_seed"]), int(failure.metadata["steps"])
    except (KeyError, ValueError):
        raise ReproducerError(f"{failure.path}: not a valid training reproducer: its metadata "
                              "has no trajectory_seed and steps.") from None
    return Trajectory.from_tensors(failure.extra, seed, steps, inputs, str(failure.path))


def retrain(target: Target, failure: Failure) -> Broken | None:
    """Train a fresh copy of ``target``'s model along the reproducer's trajectory; the first
    step that breaks, or None when none does. An NnfuzzError when the target's starting
    weights are not the ones it was found from (a model() that is not deterministic)."""
    started = state_sha256(target.model)
    if started != failure.metadata.get("start_sha256", started):
        raise NnfuzzError("model() gave other starting weights than the run that found it "
                          "(its weights' hash differs): seed the initialisation in model(), or "
                          "load a checkpoint, so that training starts from the same state.")
    data = training_set(target)
    trajectory = trajectory_of(failure, len(data.inputs))
    config = TrainConfig.from_metadata(failure.metadata, str(failure.path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trajectory.seed)
        state = TrainingState(target, data, config)
        for step in trajectory.steps:
            broken = state.apply(step)
            if broken is not None:
                return broken
    return None

