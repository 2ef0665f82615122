"""The training contract (the README's *Training*): what ``nnfuzz train`` needs of a target
file besides ``model()`` and ``seeds()``, checked once, with its defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nnfuzz.doctor.subject import OPTIMIZERS
from nnfuzz.domain import Domain, Inputs, Names, as_named_inputs, call
from nnfuzz.errors import ReproducerError, TargetError, UsageError, first_line, user_traceback
from nnfuzz.storage import content_hash
from nnfuzz.target import Target, call_loss



@dataclass(frozen=True)
class TrainConfig:
    """The options of ``nnfuzz train`` that the fuzz loop has not (its others are FuzzConfig's)."""

    #: Optimizer steps in one trajectory, at most (--max-steps).
    max_steps: int = 64
    #: Examples per batch.
    batch_size: int = 16
    #: The default optimizer and learning rate, where the target has no optimizer().
    optimizer: str = "adam"
    lr: float = 1e-3
    #: New steps a trajectory is extended by each time it is taken from the corpus.
    extension: int = 8
    #: A guided batch's inputs go up to this share of their width (a uniform draw below it)
    #: along the sign of a gradient. Measured on examples/train_bce.py, 6 run seeds x 20,000
    #: training steps: 0.1 found its NaN in 4 of 6, 0.3 in 6 (median ~3,600 steps), 0.5 in 6
    #: (~900), 1.0 in 6 (~15, its batches then mostly at the bounds); at 0.5 the loss's
    #: direction alone found it in 6 (~1,700), the outputs' magnitude alone in 6 (~250); at
    #: 0.1 those were 1 and 4 of 6. GRIST moved unnormalised inputs by 0.15 per step,
    #: accumulated over its run.
    guided_step: float = 0.5
    #: --objective: the training objectives to check (empty: every one).
    objectives: tuple[str, ...] = ()
    #: --exploding-norm, --diverge-factor, --dead-share: the objectives' thresholds (the
    #: README's *Training objectives* says how they were measured).
    exploding_norm: float = 1e5
    diverge_factor: float = 10.0
    dead_share: float = 0.9

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"--optimizer {self.optimizer!r} is unknown: choose "
                             f"{' or '.join(OPTIMIZERS)}.")
        if not self.lr > 0:
            raise UsageError(f"--lr {self.lr} must be a positive learning rate, e.g. 1e-3.")
        for name in ("max_steps", "batch_size", "extension"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')}={getattr(self, name)} must be at "
                                 "least 1.")
        if not (self.exploding_norm > 0 and self.diverge_factor > 1 and 0 < self.dead_share <= 1):
            raise UsageError("--exploding-norm must be above 0, --diverge-factor above 1 and "
                             "--dead-share within (0, 1].")

    def metadata(self) -> dict[str, str]:
        """What a training reproducer records of the options, to train the same way again."""
        return {"train_optimizer": self.optimizer, "train_lr": repr(self.lr),
                "train_batch_size": str(self.batch_size),
                "train_objectives": ",".join(self.objectives),
                "train_exploding_norm": repr(self.exploding_norm),
                "train_diverge_factor": repr(self.diverge_factor),
                "train_dead_share": repr(self.dead_share)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], origin: str) -> "TrainConfig":
        """The options :meth:`metadata` recorded; a ReproducerError naming ``origin`` when
        they cannot be read."""
        try:
            return cls(optimizer=metadata.get("train_optimizer", cls.optimizer),
                       lr=float(metadata.get("train_lr", cls.lr)),
                       batch_size=int(metadata.get("train_batch_size", cls.batch_size)),
                       # Reproducers written before the other objectives checked nonfinite.
                       objectives=tuple(n for n in metadata.get("train_objectives",
                                                                "nonfinite").split(",") if n),
                       exploding_norm=float(metadata.get("train_exploding_norm",
                                                         cls.exploding_norm)),
                       diverge_factor=float(metadata.get("train_diverge_factor",
                                                         cls.diverge_factor)),
                       dead_share=float(metadata.get("train_dead_share", cls.dead_share)))
        except ValueError as error:
            raise ReproducerError(f"{origin}: not a valid training reproducer: {error}.") from None


@dataclass(frozen=True)
class TrainingSet:
    """The examples a trajectory draws its batches from, and their domain."""

    inputs: Inputs
    labels: torch.Tensor
    names: Names
    domain: Domain

    @property
    def size(self) -> int:
        return self.inputs[0].shape[0]


def training_set(target: Target) -> TrainingSet:
    """``train_data()`` when the target defines it, else ``seeds()`` and ``targets()``; a
    TargetError naming what to add when the target cannot be trained."""
    if target.train_data is None and target.seeds is None:
        raise TargetError(f"{target.origin}: nnfuzz train needs training examples: define "
                          "seeds() (with targets()), or train_data().")
    missing = [what for what, given in (("loss(output, target)", target.loss),
                                        ("targets()", target.labels if target.train_data is None
                                         else True)) if given is None]
    if missing:
        raise TargetError(f"{target.origin}: nnfuzz train needs {' and '.join(missing)}: define "
                          f"{'them' if len(missing) > 1 else 'it'} in the target file (the "
                          "README's *Training*).")
    if target.train_data is None:
        inputs, names, labels = target.seeds, target.input_names, target.labels
    else:
        inputs, names, labels = _train_data(target)
    assert inputs is not None and labels is not None
    return TrainingSet(inputs, labels, names, target.domain(inputs, names))


def _train_data(target: Target) -> tuple[Inputs, Names, torch.Tensor]:
    try:
        given = target.train_data()  # type: ignore[misc]
    except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
        raise TargetError(f"{target.origin}: train_data() raised {type(error).__name__}: "
                          f"{first_line(error)}", context=user_traceback(error)) from None
    if not (isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], torch.Tensor)):
        raise TargetError(f"{target.origin}: train_data() must return (inputs, targets): the "
                          "inputs as seeds() gives them and one label per example.")
    inputs, names = as_named_inputs(given[0], f"{target.origin}: train_data()")
    if given[1].shape[:1] != inputs[0].shape[:1]:
        raise TargetError(f"{target.origin}: train_data() gave {inputs[0].shape[0]} inputs but "
                          f"{given[1].shape[0] if given[1].dim() else 0} targets: one label each.")
    return inputs, names, given[1]


def make_optimizer(target: Target, model: torch.nn.Module,
                   config: TrainConfig) -> torch.optim.Optimizer:
    """The target's ``optimizer(parameters)``, or ``--optimizer`` at ``--lr``."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if target.optimizer is None:
        return OPTIMIZERS[config.optimizer](parameters, lr=config.lr)
    made = target.optimizer(parameters)
    if not isinstance(made, torch.optim.Optimizer):
        raise TargetError(f"{target.origin}: optimizer(parameters) returned "
                          f"{type(made).__name__}, not a torch.optim optimizer.")
    return made


def state_sha256(model: torch.nn.Module) -> str:
    """The starting weights' hash (every tensor of the state, bf16 ones included): a
    reproducer replays only from the same starting state."""
    return content_hash(tuple(t for t in model.state_dict().values() if isinstance(t, torch.Tensor)))


def describe(config: TrainConfig, target: Target) -> str:
    optimizer = ("the target's optimizer()" if target.optimizer is not None
                 else f"{config.optimizer} at lr {config.lr:g}")
    step = "the target's train_step()" if target.train_step is not None else "forward, loss, backward, step"
    return (f"training: {optimizer}, batches of {config.batch_size}, trajectories of up to "
            f"{config.max_steps} steps ({step})")


def call_model(target: Target, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
               names: Names, where: str) -> Any:
    """The model on a batch (``where``: which one, for the message); the target's own
    exception — seeds of a shape its forward() does not take, say — is one TargetError naming
    the target, not an internal error."""
    try:
        return call(model, inputs, names)
    except Exception as error:  # noqa: BLE001 - the target's own failure, shown to the user
        raise TargetError(f"{target.origin}: the model raised {type(error).__name__} {where} of "
                          f"{inputs[0].shape[0]}: {first_line(error)}",
                          context=user_traceback(error)) from None


def loss_of(target: Target, output: Any, labels: torch.Tensor) -> torch.Tensor:
    """The target's loss as one number to step on (a per-example loss is averaged)."""
    return call_loss(target, output, labels, "it gets the model's output on a training batch "
                                             "and that batch's labels.").mean()
