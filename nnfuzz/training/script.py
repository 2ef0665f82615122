"""``nnfuzz replay --script FILE``: a training reproducer as a plain PyTorch script (torch,
safetensors and the target file, no nnfuzz), for a bug report. It trains a fresh model from
``model()`` along the saved trajectory with an ordinary loop and stops at the step that
breaks, saying what went non-finite (exit 1), or that none did (exit 0)."""

from __future__ import annotations

from pathlib import Path

from nnfuzz.domain import IMAGE, Domain, Field
from nnfuzz.errors import UsageError
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.storage import atomic_write
from nnfuzz.target import Target
from nnfuzz.training.replay import is_training, trajectory_of
from nnfuzz.training.setup import TrainConfig, training_set

TEMPLATE = '''"""Replays {reproducer_name}: {detail}.

Written by `nnfuzz replay --script`; needs torch and safetensors, and the target file.
Run it from anywhere: python {script_name}
"""
import importlib.util
import sys

import torch
from safetensors import safe_open

TARGET = {target!r}
REPRODUCER = {reproducer!r}

spec = importlib.util.spec_from_file_location("target", TARGET)
target = importlib.util.module_from_spec(spec)
sys.path.insert(0, {folder!r})
spec.loader.exec_module(target)

with safe_open(REPRODUCER, "pt") as saved:
    steps = {{key: saved.get_tensor(key) for key in saved.keys() if key.startswith("extra.step.")}}

{data}
model = target.model()
model.train()
parameters = [p for p in model.parameters() if p.requires_grad]
{optimizer}
torch.manual_seed({seed})


def moved(i):
    """Step i's batch: its examples, with the saved moves added, kept within the bounds."""
    index = steps[f"extra.step.{{i}}.indices"]
    batch = []
{moves}
    return batch, labels[index]


def broken(name, tensor):
    if not torch.isfinite(tensor).all():
        kind = "NaN" if tensor.isnan().any() else "Inf"
        print(f"step {{i + 1}}: {{kind}} in the training {{name}}")
        sys.exit(1)


for i in range({steps}):
    batch, y = moved(i)
{step}
print("trained {steps} steps: nothing went non-finite")
'''

DEFAULT_STEP = '''    optimizer.zero_grad()
    loss = target.loss(model({call}), y).mean()
    print(f"step {{i + 1}}: loss {{loss.item():.6g}}")
    broken("loss", loss)
    loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            broken(f"gradient of {{name}}", p.grad)
    optimizer.step()
    for name, p in model.named_parameters():
        broken(f"parameter {{name}}", p)
        for key, value in optimizer.state.get(p, {{}}).items():
            if torch.is_tensor(value) and value.is_floating_point():
                broken(f"optimizer state {{key}} of {{name}}", value)'''

USERS_STEP = '''    loss = target.train_step(model, ({call}, y), optimizer)
    print(f"step {{i + 1}}: loss {{float(loss):.6g}}")
    broken("loss", torch.as_tensor(float(loss)))
    for name, p in model.named_parameters():
        broken(f"parameter {{name}}", p)'''


def training_script(target_path: Path, failure: Failure, domain: Domain, names: tuple[str, ...] | None,
                    has_train_data: bool, has_optimizer: bool, has_train_step: bool,
                    script_name: str) -> str:
    """The script's text (see the module's docstring)."""
    if not is_training(failure):
        raise UsageError(f"{failure.path}: --script writes a script for a training reproducer "
                         "(nnfuzz train); this one is an input: replay it as it is.")
    config = TrainConfig.from_metadata(failure.metadata, str(failure.path))
    trajectory = trajectory_of(failure, len(domain.fields))
    data = ("inputs, labels = target.train_data()" if has_train_data else
            "inputs, labels = target.seeds(), target.targets()")
    data += ("\ninputs = [inputs[name] for name in %r]" % (list(names),) if names else
             "\ninputs = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]")
    optimizer = ("optimizer = target.optimizer(parameters)" if has_optimizer else
                 f"optimizer = torch.optim.{'Adam' if config.optimizer == 'adam' else 'SGD'}"
                 f"(parameters, lr={config.lr!r})")
    moves = "\n".join(_move(position, field) for position, field in enumerate(domain.fields))
    call = (", ".join(f"**{{{name!r}: batch[{position}]}}" for position, name in enumerate(names))
            if names else "*batch")
    step = (USERS_STEP if has_train_step else DEFAULT_STEP).format(
        call=f"dict(zip({list(names)!r}, batch))" if names and has_train_step else call)
    return TEMPLATE.format(
        reproducer_name=Path(str(failure.path)).name, detail=failure.detail,
        script_name=script_name, target=str(target_path.resolve()),
        reproducer=str(Path(str(failure.path)).resolve()),
        folder=str(target_path.resolve().parent), data=data, optimizer=optimizer,
        seed=trajectory.seed, moves=moves, steps=len(trajectory), step=step)


def _move(position: int, field: Field) -> str:
    """The script's lines that move input ``position`` of a step as Field.clamp keeps it."""
    low, high = field.low, field.high
    rounding = ".round()" if field.kind == IMAGE else ""
    return (f"    x = inputs[{position}][index]\n"
            f"    delta = steps.get(f\"extra.step.{{i}}.delta.{position}\")\n"
            f"    if delta is not None:\n"
            f"        x = (x + delta.to(x.dtype)){rounding}.clamp({low!r}, {high!r}).to(x.dtype)\n"
            f"    batch.append(x)")


def write_script(target: Target, path: Path, script: Path) -> Path:
    """The reproducer at ``path`` as a script for ``target``, written atomically at ``script``."""
    if target.path is None:
        raise UsageError("--script needs a target file: the script imports it.")
    failure = load_failure(path)
    data = training_set(target)
    text = training_script(target.path, failure, data.domain, data.names,
                           has_train_data=target.train_data is not None,
                           has_optimizer=target.optimizer is not None,
                           has_train_step=target.train_step is not None, script_name=script.name)
    atomic_write(script, text.encode())
    return script
