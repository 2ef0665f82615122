"""The training-bug zoo: nnfuzz train against the searches a user has without it.

    python -m benchmarks.training [--quick] [--budget 50000] [--seeds 5]

Each target of benchmarks/training_zoo/ trains cleanly from its starting weights on its
own data with its default hyperparameters (tests/unit/test_training_zoo.py checks 10
shuffles of 64 steps), and breaks on some trajectory within its bounds and its declared
ranges. Three searches get the same budget of training steps (and at most MAX_SECONDS):

- ``nnfuzz train``: the engine as the command runs it (``--objective`` the target's bug);
- ``plain training``: what a user does to look for it — train again and again, 64 steps
  from the starting weights, batches reshuffled, hyperparameters drawn within the target's
  HYPERPARAMETERS, a new seed each time; the same objectives judge every step;
- ``GRIST's move alone``: every batch moved along the sign of the loss's gradient with
  respect to its inputs, restarted every 64 steps, no coverage, no label noise, default
  hyperparameters (GRIST, ESEC/FSE'21).

All three are settings of the same engine (nnfuzz.training.engine.Search), so they share
the objectives, the counting and the reproducers; each looks for the target's bug alone (the
objective its ``BREAKS`` names, as ``--objective`` does). Speed: nnfuzz train's training steps
per second against the target's own plain training loop (forward, loss, backward, step,
no checks) on the same batch size, measured one after the other in this process.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks import machine, report
from benchmarks.training_zoo import TARGETS
from nnfuzz.config import FuzzConfig
from nnfuzz.domain import call
from nnfuzz.drivers.in_process import run_in_process
from nnfuzz.target import load_target
from nnfuzz.training.engine import Search, Trainer
from nnfuzz.training.objectives import Judge
from nnfuzz.training.setup import TrainConfig, loss_of, make_optimizer, training_set
from nnfuzz.training.state import TrainingState
from nnfuzz.training.trajectory import Step

ZOO = Path(__file__).resolve().parent / "training_zoo"
#: Measured for speed only: a model large enough that its arithmetic, not Python, sets the
#: pace (the zoo's models take well under a millisecond a step).
SPEED_ONLY = (ZOO / "speed" / "mlp_784.py",)
QUICK, FULL = (50_000, 3), (50_000, 5)
MAX_SECONDS = 120.0
STEPS = 64
SEARCHES = {
    "nnfuzz train": (Search(), False),
    "plain training": (Search(guided_share=0.0, label_noise_share=0.0, coverage=False,
                              defaults_share=0.0, constant_share=0.0, plain_prefixes=0.0), True),
    "GRIST's move alone": (Search(guided_share=1.0, directions=("loss",), label_noise_share=0.0,
                                  coverage=False, defaults_share=1.0, edge_share=0.0,
                                  constant_share=0.0, plain_prefixes=0.0), True),
}
#: (found the bug, training steps to it, seconds, steps per second)
Outcome = tuple[bool, int, float, float]


def search(path: Path, name: str, budget: int, seed: int) -> Outcome:
    """One search of one target: its first failure, within the budget and MAX_SECONDS."""
    target = load_target(path, need_seeds=False)
    settings, restart = SEARCHES[name]
    # Each search looks for the target's bug (its BREAKS objective), as --objective does.
    training = TrainConfig(max_steps=STEPS, extension=STEPS if restart else 8,
                           objectives=(_breaks(path),))
    config = FuzzConfig(runs=budget, max_time=MAX_SECONDS, seed=seed, stop_on_failure=True,
                        minimize=False)
    engine = functools.partial(Trainer, training=training, search=settings)
    start = time.perf_counter()
    result = run_in_process(target, config, engine=engine)
    elapsed = time.perf_counter() - start
    rate = result.execs / elapsed if elapsed > 0 else 0.0
    if not result.failures:
        return False, result.execs, elapsed, rate
    return True, int(result.failures[0].metadata["found_after_execs"]), elapsed, rate


def _breaks(path: Path) -> str:
    """The objective the target's bug fires (its BREAKS), read without running the file."""
    for line in path.read_text().splitlines():
        if line.startswith("BREAKS = "):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise ValueError(f"{path.name} names no BREAKS")


def nnfuzz_rate(path: Path, steps: int = 3000) -> float:
    """nnfuzz train's training steps per second over ``steps``, going on past failures."""
    target = load_target(path, need_seeds=False)
    config = FuzzConfig(runs=steps, seed=0, minimize=False)
    engine = functools.partial(Trainer, training=TrainConfig(max_steps=STEPS))
    start = time.perf_counter()
    result = run_in_process(target, config, engine=engine)
    return result.execs / (time.perf_counter() - start)


def plain_loop_rate(path: Path, steps: int = 3000) -> float:
    """The target's own training loop, no nnfuzz, restarted from the starting weights every
    STEPS steps as nnfuzz's trajectories are (a model trained on for thousands of steps runs
    at another speed: denormal numbers, other activations): steps per second."""
    target = load_target(path, need_seeds=False)
    data = training_set(target)
    config = TrainConfig()
    generator = torch.Generator().manual_seed(0)
    size = min(config.batch_size, data.size)
    batches = [torch.randperm(data.size, generator=generator)[:size] for _ in range(steps)]
    start = time.perf_counter()
    for number, index in enumerate(batches):
        if number % STEPS == 0:
            model = copy.deepcopy(target.model).train()
            optimizer = make_optimizer(target, model, config)
        optimizer.zero_grad(set_to_none=True)
        inputs = tuple(t[index] for t in data.inputs)
        output = call(model, inputs, data.names)
        loss = loss_of(target, output, data.labels[index])
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def clean_maxima(path: Path, shuffles: int = 10) -> tuple[float, float, float]:
    """What plain training at the defaults reaches, for the objectives' defaults: over
    ``shuffles`` trainings of STEPS steps from the starting weights, the largest global
    gradient norm, share of a ReLU layer dead on the probe, and probe loss over its start."""
    target = load_target(path, need_seeds=False)
    data = training_set(target)
    # Thresholds that never fire: what is measured is read, not judged.
    config = TrainConfig(objectives=("nonfinite", "dead", "diverge"), exploding_norm=1e300,
                         dead_share=1e-12, diverge_factor=1e300)
    judge = Judge(target, data, config)
    norm = dead = ratio = 0.0
    for shuffle in range(shuffles):
        generator = torch.Generator().manual_seed(shuffle)
        torch.manual_seed(shuffle)
        state = TrainingState(target, data, config, judge)
        size = min(config.batch_size, data.size)
        for _ in range(STEPS):
            state.apply(Step(torch.randperm(data.size, generator=generator)[:size],
                             tuple(None for _ in data.inputs)), probe=False)
            loss, worst = judge.probe_loss(state.model)
            norm = max(norm, state.gradient_norm)
            dead = max(dead, worst[1] if worst else 0.0)
            ratio = max(ratio, loss / judge.start_loss)
    return norm, dead, ratio


def markdown(outcomes: dict[str, dict[str, list[Outcome]]], speed: dict[str, tuple[float, float]],
             maxima: dict[str, tuple[float, float, float]], budget: int, seeds: int, quick: bool,
             wall_s: float, started: str) -> str:
    rows = []
    for target, by in outcomes.items():
        for name, runs in by.items():
            found = [steps for ok, steps, _, _ in runs if ok]
            steps = [steps if ok else budget for ok, steps, _, _ in runs]
            rows.append([f"`{target}`", name, f"{len(found)}/{len(runs)}",
                         f"{statistics.median(steps):,.0f} ({min(steps):,}–{max(steps):,})",
                         f"{statistics.median(s for _, _, s, _ in runs):.1f}"])
    speed_rows = [[f"`{t}`", f"{mine:,.0f}", f"{plain:,.0f}", f"{mine / plain:.2f}x"]
                  for t, (mine, plain) in speed.items()]
    return "\n".join([
        "## Training bugs: nnfuzz train against plain training and GRIST's move", "",
        report.command_line("training", quick, wall_s, started), "",
        __doc__.split("\n\n", 2)[2].split("\n\nAll three")[0].strip(), "",
        f"Budget {budget:,} training steps and {MAX_SECONDS:g} s per search, run seeds "
        f"0..{seeds - 1}; a search that finds nothing counts as the budget.", "",
        report.table(["target", "search", "found", "training steps to the first failure, "
                      "median (min–max)", "seconds, median"], rows), "",
        "Training steps per second over 3,000 steps (nnfuzz train's own counting: the "
        "replays of kept trajectories included; the guided steps' gradient passes and the "
        "probe's forward are not steps) against the target's plain training loop on batches "
        "of the same size:", "",
        report.table(["target", "nnfuzz train steps/s", "plain loop steps/s", "ratio"],
                     speed_rows), "",
        "What clean training reaches, for the objectives' defaults (exploding 1e5, dead 0.9, "
        "diverge 10x): the largest value over 10 plain trainings of 64 steps at the "
        "defaults, probed after every step:", "",
        report.table(["target", "global gradient norm", "share of a ReLU layer dead",
                      "probe loss / its start"],
                     [[f"`{t}`", f"{n:.3g}", f"{d:.2f}", f"{r:.2f}"]
                      for t, (n, d, r) in maxima.items()]),
    ])


def run(quick: bool, budget: int | None = None, seeds: int | None = None) -> Path:
    default_budget, default_seeds = QUICK if quick else FULL
    budget, seeds = budget or default_budget, seeds or default_seeds
    torch.set_num_threads(1)
    started, start = machine.provenance(threads=1), time.perf_counter()
    outcomes: dict[str, dict[str, list[Outcome]]] = {}
    speed: dict[str, tuple[float, float]] = {}
    maxima: dict[str, tuple[float, float, float]] = {}
    for file in TARGETS:
        path = ZOO / file
        outcomes[path.stem] = {name: [search(path, name, budget, seed) for seed in range(seeds)]
                               for name in SEARCHES}
        speed[path.stem] = (nnfuzz_rate(path), plain_loop_rate(path))
        maxima[path.stem] = clean_maxima(path)
        print(path.stem, {n: [o[:2] for o in r] for n, r in outcomes[path.stem].items()},
              flush=True)
    for extra in SPEED_ONLY:
        speed[extra.stem] = (nnfuzz_rate(extra), plain_loop_rate(extra))
    text = markdown(outcomes, speed, maxima, budget, seeds, quick, time.perf_counter() - start,
                    started)
    out = report.write("training", text, quick)
    report.result_path("training", quick, ".json").write_text(json.dumps(
        {"commit": machine.commit(), "budget": budget, "outcomes": outcomes,
         "speed": speed, "clean_maxima": maxima}, indent=1) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=int)
    parser.add_argument("--seeds", type=int)
    args = parser.parse_args()
    run(args.quick, args.budget, args.seeds)


if __name__ == "__main__":
    main()
