"""``nnfuzz replay --script FILE``: a training reproducer as a plain PyTorch script (torch,
safetensors and the target file, no nnfuzz), for a bug report. It trains a fresh model from
``model()`` along the saved trajectory (its batches, moves, labels and hyperparameters) with
an ordinary loop, checks what the run checked, and stops at the step that breaks, saying
what (exit 1), or that none did (exit 0)."""

from __future__ import annotations

from pathlib import Path

from nnfuzz.domain import IMAGE, Domain, Field
from nnfuzz.errors import UsageError
from nnfuzz.input_script import IMPORT_TARGET, input_script
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.storage import atomic_write
from nnfuzz.target import Target
from nnfuzz.training.objectives import PROBE_SIZE
from nnfuzz.training.replay import is_training, trajectory_of
from nnfuzz.training.setup import TrainConfig, training_set

TEMPLATE = '''"""Replays {reproducer_name}: {detail}.

Written by `nnfuzz replay --script`; needs torch and safetensors, and the target file.
Run it from anywhere: python {script_name}
"""
import importlib.util
import sys
import types

import torch
from safetensors import safe_open

''' + IMPORT_TARGET + '''
with safe_open(REPRODUCER, "pt") as saved:
    steps = {{key: saved.get_tensor(key) for key in saved.keys() if key.startswith("extra.step.")}}
    # The starting weights, saved where model() gives other weights on each call.
    start = {{key[len("extra.start."):]: saved.get_tensor(key) for key in saved.keys()
             if key.startswith("extra.start.")}}

{data}
model = target.model()
if start:
    model.load_state_dict(start)
parameters = [p for p in model.parameters() if p.requires_grad]
{optimizer}
for group in optimizer.param_groups:  # the trajectory's hyperparameters
    group.update({hyperparameters!r})


def moved(i):
    """Step i's batch: its examples, with the saved moves added, kept within the bounds,
    and the labels they trained with (another example's where the step says so)."""
    index = steps[f"extra.step.{{i}}.indices"]
    batch = []
{moves}
    donors = steps.get(f"extra.step.{{i}}.labels")
    return batch, labels[index if donors is None else donors]


def fails(what):
    print(f"step {{i + 1}}: {{what}}")
    sys.exit(1)


def broken(name, tensor):
    if not torch.isfinite(tensor).all():
        fails(f"{{'NaN' if tensor.isnan().any() else 'Inf'}} in the training {{name}}")


def probe():
    """The probe batch's (the first {probe_size} examples as they are) mean loss, and each
    ReLU layer's share of units never positive on it; in eval mode, changing nothing."""
    shares = {{}}

    def seen(name, out):
        shares.setdefault(name, float((out.reshape(out.shape[0], -1).amax(0) <= 0).float().mean()))

    hooks = [m.register_forward_hook(lambda m, a, out, name=name: seen(name, out))
             for name, m in model.named_modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    batch, y = [x[:{probe_size}] for x in inputs], labels[:{probe_size}]
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        loss = float(target.loss(model({call}), y).mean())
    model.train()
    for hook in hooks:
        hook.remove()
    return loss, max(shares.items(), key=lambda item: item[1], default=("", 0.0))


start_loss = probe()[0]
model.train()
torch.manual_seed({seed})
for i in range({steps}):
    batch, y = moved(i)
{step}
{checks}
print("trained {steps} steps: nothing broke")
'''

DEFAULT_STEP = '''    optimizer.zero_grad()
    loss = target.loss(model({call}), y).mean()
    print(f"step {{i + 1}}: loss {{loss.item():.6g}}")
    broken("loss", loss)
    loss.backward()
    grads = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
    for name, grad in grads:
        broken(f"gradient of {{name}}", grad)
    norm = float(sum(grad.double().square().sum() for _, grad in grads)) ** 0.5
{exploding}    optimizer.step()
    for name, p in model.named_parameters():
        broken(f"parameter {{name}}", p)
        for key, value in optimizer.state.get(p, {{}}).items():
            if torch.is_tensor(value) and value.is_floating_point():
                broken(f"optimizer state {{key}} of {{name}}", value)'''

USERS_STEP = '''    loss = target.train_step(model, ({call}, y), optimizer)
    print(f"step {{i + 1}}: loss {{float(loss):.6g}}")
    broken("loss", torch.as_tensor(float(loss)))
    norm = float("nan")
    for name, p in model.named_parameters():
        broken(f"parameter {{name}}", p)'''

EXPLODING = '''    if norm > {limit!r}:
        fails(f"gradient norm {{norm:.3g}} > {limit:g}")
'''

#: The checks after a step, by objective, in the order the engine makes them.
CHECKS = {
    "dead": '''    if share >= {config.dead_share!r}:
        fails(f"{{share:.0%}} of ReLU layer '{{layer}}' inactive on the probe")''',
    "diverge": '''    if not probe_loss <= {config.diverge_factor!r} * start_loss:
        fails(f"probe loss {{probe_loss:.4g}} > {config.diverge_factor:g}x its start {{start_loss:.4g}}")''',
}
USER_CHECK = '''    state = types.SimpleNamespace(step=i + 1, loss=float(loss), gradient_norm=norm, model=model,
                                  optimizer=optimizer, inputs=batch, labels=y)
    for objective in target.train_objectives():
        if objective.__name__ in {names!r} and objective(state):
            fails(f"objective {{objective.__name__}} returned True")'''


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
    exploding = (EXPLODING.format(limit=config.exploding_norm)
                 if "exploding" in config.objectives else "")
    step = (USERS_STEP if has_train_step else DEFAULT_STEP).format(
        # train_step gets (inputs, labels) as the engine gives it: the inputs as one tuple
        # (or a dict by name), not spread.
        call=(f"dict(zip({list(names)!r}, batch))" if names else "tuple(batch)")
        if has_train_step else call,
        exploding=exploding)
    checks = [CHECKS[name].format(config=config) for name in CHECKS if name in config.objectives]
    if checks:
        checks.insert(0, "    probe_loss, (layer, share) = probe()")
    users = [name for name in config.objectives if name not in CHECKS
             and name not in ("nonfinite", "exploding")]
    if users:
        checks.append(USER_CHECK.format(names=users))
    return TEMPLATE.format(
        reproducer_name=Path(str(failure.path)).name, detail=failure.detail,
        script_name=script_name, target=str(target_path.resolve()),
        reproducer=str(Path(str(failure.path)).resolve()),
        folder=str(target_path.resolve().parent), data=data, optimizer=optimizer,
        hyperparameters={k: v for k, v in trajectory.values.items() if k != "batch_size"},
        seed=trajectory.seed, moves=moves, steps=len(trajectory), step=step,
        checks="\n".join(checks), call=call, probe_size=PROBE_SIZE)


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
    """The reproducer at ``path`` as a script for ``target``, written atomically at ``script``:
    a training reproducer's here, an input reproducer's by nnfuzz.input_script."""
    if target.path is None:
        raise UsageError("--script needs a target file: the script imports it.")
    failure = load_failure(path)
    if not is_training(failure):  # an input reproducer (nnfuzz run's): its own script
        atomic_write(script, input_script(target, failure, script.name).encode())
        return script
    data = training_set(target)
    text = training_script(target.path, failure, data.domain, data.names,
                           has_train_data=target.train_data is not None,
                           has_optimizer=target.optimizer is not None,
                           has_train_step=target.train_step is not None, script_name=script.name)
    atomic_write(script, text.encode())
    return script
