"""``nnfuzz train``: the command line of the training engine, with ``run``'s habits (status
lines, the output folder, resume, exit codes 0/1/2/130). Imports nothing heavy at the top:
``nnfuzz --help`` answers before torch is loaded."""

from __future__ import annotations

from pathlib import Path

import click

from nnfuzz.exits import handles_errors, run_exit_code
from nnfuzz.tracking.command import Tracker, tracked

#: The optimizers --optimizer offers (nnfuzz.training.setup.OPTIMIZERS, kept here as names so
#: that --help needs no torch).
OPTIMIZER_NAMES = ("adam", "sgd")


@click.command(short_help="Fuzz the training of a target's model; exit 1 on a new failure.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("nnfuzz-train-out"),
              show_default=True, help="Output folder (resumed when it exists).")
@click.option("--max-time", type=float, help="Stop after this many seconds.")
@click.option("--runs", type=click.IntRange(min=0), help="Stop after this many training steps.")
@click.option("--max-steps", type=click.IntRange(min=1), default=64, show_default=True,
              help="Optimizer steps in one trajectory from the starting weights, at most.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Training examples per step.")
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES), default="adam",
              show_default=True, help="Where the target has no optimizer(parameters).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True, help="The learning rate of --optimizer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed.")
@click.option("--objective", "objectives", multiple=True, metavar="NAME",
              help="Check only these training objectives (repeatable): nonfinite, exploding, "
                   "dead, diverge, or one of the target's train_objectives(); default every one.")
@click.option("--exploding-norm", type=click.FloatRange(min=0, min_open=True), default=1e5,
              show_default=True, help="exploding: the global gradient norm past this.")
@click.option("--diverge-factor", type=click.FloatRange(min=1, min_open=True), default=10.0,
              show_default=True, help="diverge: the probe batch's loss past this many times "
                                      "its value at the starting weights.")
@click.option("--dead-share", type=click.FloatRange(min=0, max=1, min_open=True), default=0.9,
              show_default=True, help="dead: this share of a ReLU layer's units never positive "
                                      "on the probe batch.")
@click.option("--stop-on-failure", is_flag=True, help="Stop at the first new failure.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (or Ray actors), each training its own trajectories and "
                   "taking in the others' from OUT/corpus, one output folder.")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS|local",
              help="Run the --workers as Ray actors: on the cluster at ADDRESS, the one this "
                   "machine belongs to (auto), or a Ray instance started here (local).")
@handles_errors
@tracked("train")
def train(target: Path, out: Path, max_time: float | None, runs: int | None, max_steps: int,
          batch_size: int, optimizer: str, lr: float, seed: int, objectives: tuple[str, ...],
          exploding_norm: float, diverge_factor: float, dead_share: float,
          stop_on_failure: bool, workers: int, ray_address: str | None, tracker: Tracker) -> int:
    """Train copies of TARGET.py's model along searched trajectories (which examples, moved
    how, with which labels and hyperparameters); exit 1 when a step breaks in a new way (a
    NaN or Inf loss, gradient or parameter, an exploding gradient, a dead ReLU layer, a
    diverging loss, or one of the target's train_objectives())."""
    import functools

    from nnfuzz.config import FuzzConfig
    from nnfuzz.api import fuzz_target
    from nnfuzz.output import OutputFolder
    from nnfuzz.status import TerminalReporter
    from nnfuzz.target import file_sha256, load_target
    from nnfuzz.training.engine import Trainer
    from nnfuzz.training.setup import TrainConfig

    if target.is_file():
        OutputFolder.check_usable(out, target.name, file_sha256(target), engine="train")
    loaded = load_target(target, need_seeds=False)  # train_data() may give the examples
    training = TrainConfig(max_steps=max_steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
                           objectives=objectives, exploding_norm=exploding_norm,
                           diverge_factor=diverge_factor, dead_share=dead_share)
    training.check()
    config = FuzzConfig(max_time=max_time, runs=runs, seed=seed, stop_on_failure=stop_on_failure,
                        minimize=False)
    reporter = TerminalReporter(total_runs=runs, max_time=max_time)
    engine = functools.partial(Trainer, training=training)
    # The same drivers as nnfuzz run: one process, worker processes, or Ray actors.
    result = fuzz_target(loaded, config, out=out, reporter=reporter, workers=workers,
                         ray=ray_address, engine=engine, tracker=tracker)
    return run_exit_code(result, out)
