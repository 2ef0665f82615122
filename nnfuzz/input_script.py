"""``nnfuzz replay --script FILE`` for an input reproducer (``nnfuzz run``'s): the failure as a
standalone script of a few dozen lines (torch, safetensors and the target file, no nnfuzz),
the form a bug report on PyTorch's tracker asks for.

The script imports the target, loads the saved input with ``safe_open``, runs ``model()`` in
eval mode on it as one example in a batch of its own (as replay runs it), and checks the
reproducer's objective by the same rule nnfuzz applies, written out in plain torch so that a
reader sees the rule: exit 1 with one line saying what fails while it does, exit 0 once fixed.
A model that raises where its objective is not ``exception`` stops the script with its own
traceback (exit 1 too): replay calls that an error, not a fix.
"""

from __future__ import annotations

from pathlib import Path

from nnfuzz.errors import UsageError
from nnfuzz.objectives import DEFAULT_ATOL, DEFAULT_RTOL
from nnfuzz.objectives.base import judged_by
from nnfuzz.objectives.disagree import SAME_PRECISION
from nnfuzz.references import model_label
from nnfuzz.reproducer import Failure
from nnfuzz.target import Target

#: The lines of every reproducer script (this module's and nnfuzz train's) that import the
#: target file and name the reproducer: one place to keep them.
IMPORT_TARGET = '''TARGET = {target!r}
REPRODUCER = {reproducer!r}

spec = importlib.util.spec_from_file_location("target", TARGET)
target = importlib.util.module_from_spec(spec)
sys.path.insert(0, {folder!r})
spec.loader.exec_module(target)
'''

TEMPLATE = '''"""Replays {reproducer_name}: {objective}: {detail}.

Written by `nnfuzz replay --script`; needs torch and safetensors, and the target file.
Exit 1 while it fails (one line says what), 0 once fixed. Run it from anywhere:
python {script_name}
"""
import importlib.util
import sys

import torch
from safetensors import safe_open

''' + IMPORT_TARGET + '''
# The saved input, one example in a batch of its own (as nnfuzz replays it).
with safe_open(REPRODUCER, "pt") as saved:
    inputs = [saved.get_tensor(key)[None] for key in {keys!r}]{label}

model = target.model().eval()  # nnfuzz runs the model in eval mode


def run(function, args=inputs):
    return function({call})


def tensors(value):
    """Every tensor in an output (a tensor, or tuples, lists and dicts of them), in order."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors(item)]
    return []


def kind(tensor):
    return "NaN" if tensor.isnan().any() else "Inf"


def fails(what):
    print(what)
    sys.exit(1)


{check}
print("fixed: {objective} no longer fires on this input")
'''

NONFINITE = '''# nonfinite: NaN or Inf in an output, or in the output of any module on the way.
made = []  # the modules whose output is NaN or Inf, in forward order


def watch(module, args, output, name):
    if any(not torch.isfinite(t).all() for t in tensors(output) if t.is_floating_point()):
        made.append(name)


for name, module in model.named_modules():
    module.register_forward_hook(lambda m, a, out, name=name or "(model)": watch(m, a, out, name))
with torch.no_grad():
    output = run(model)
where = f" (first made by module {{made[0]!r}})" if made and made[0] != "(model)" else ""
for position, tensor in enumerate(tensors(output)):
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        fails(f"{{kind(tensor)}} in output {{position}}{{where}}")
if made:
    fails(f"NaN or Inf in the output of module {{made[0]!r}} (the model's output is finite)")'''

EXCEPTION = '''# exception: the model raises on this input.
try:
    with torch.no_grad():
        run(model)
except Exception as error:
    fails(f"the model raised {{type(error).__name__}}: {{(str(error).splitlines() or [''])[0]}}")'''

LOSS = '''# loss: the loss of this example must be finite, then its gradient w.r.t. each float
# input, then w.r.t. each parameter (nnfuzz's loss objective checks them in this order).
inputs = [x.requires_grad_() if x.is_floating_point() else x for x in inputs]
loss = target.loss(run(model), label).float().sum()
if not torch.isfinite(loss):
    fails(f"the loss is {{kind(loss)}}")
leaves = [x for x in inputs if x.requires_grad]
parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
grads = torch.autograd.grad(loss, leaves + [p for _, p in parameters], allow_unused=True)
for position, grad in enumerate(grads[:len(leaves)]):
    if grad is not None and not torch.isfinite(grad).all():
        fails(f"the gradient of the loss w.r.t. input {{position}} is {{kind(grad)}}")
for (name, _), grad in zip(parameters, grads[len(leaves):]):
    if grad is not None and not torch.isfinite(grad).all():
        fails(f"the gradient of the loss w.r.t. parameter {{name!r}} is {{kind(grad)}}")'''

DISAGREE = '''# disagree: the model against {what}.
{reference}


with torch.no_grad():
    output = run(model)
    try:
        other = run(reference{reference_args})
    except Exception as error:
        fails(f"{who} raised {{type(error).__name__}}: {{error}}")


def primary(value):
    """The output compared: a mapping's "logits", else the first tensor."""
    if isinstance(value, dict) and torch.is_tensor(value.get("logits")):
        return value["logits"].float()
    return tensors(value)[0].float()


ours, theirs = primary(output), primary(other)
{check}'''

#: A disagreement: outputs that differ by nnfuzz's rule, and the float64 arbiter's verdict.
COMPARE = '''for side, value in (("the model's", ours), ("the reference's", theirs)):
    if not torch.isfinite(value).all():  # nnfuzz compares finite outputs only
        print(f"{{side}} output is not finite: a nonfinite failure, not a disagreement")
        sys.exit(0)


def float64():
    """The input through a float64 copy of the model, the arbiter of who is off (None where
    the model has no float64 kernel for an op)."""
    import copy

    exact = copy.deepcopy(model).double()
    try:
        with torch.no_grad():
            return primary(run(exact, [x.double() if x.is_floating_point() else x
                                       for x in inputs])).double()
    except Exception as error:
        print(f"float64 could not run: {{type(error).__name__}}: {{error}}")
        return None


RECORDED = {recorded!r}  # what nnfuzz's arbiter said when it found this
# The rule: class scores (a last dimension of more than one) disagree where the argmax
# differs; other outputs where |ours - theirs| > atol + rtol * |theirs|. (nnfuzz leaves out
# positions a target marks as padding; this compares every position.)
if ours.dim() >= 2 and ours.shape[-1] > 1:
    mine, their = ours.argmax(-1).reshape(-1), theirs.argmax(-1).reshape(-1)
    differ = mine != their
    if {tie_rule}:  # float32 against float32: scores tied within atol + rtol·|score| flip freely
        scores = ours.reshape(-1, ours.shape[-1])
        top, second = scores.gather(1, mine[:, None])[:, 0], scores.gather(1, their[:, None])[:, 0]
        differ &= (top - second).abs() > {atol!r} + {rtol!r} * top.abs()
    differ = differ.nonzero().flatten()
    if len(differ):
        i = int(differ[0])
        at = f" at position {{i}}" if len(mine) > 1 else ""
        exact = float64()
        verdict = "float64 could not run" if exact is None else (
            "float64 agrees with {model_label}" if int(exact.argmax(-1).reshape(-1)[i]) == int(mine[i])
            else "float64 agrees with {label}" if int(exact.argmax(-1).reshape(-1)[i]) == int(their[i])
            else f"float64 predicts {{int(exact.argmax(-1).reshape(-1)[i])}}, agreeing with neither")
        fails(f"{model_label} predicts {{int(mine[i])}}, {label} predicts {{int(their[i])}}{{at}}; "
              f"{{verdict}} (nnfuzz said: {{RECORDED}})")
else:
    ATOL, RTOL = {atol!r}, {rtol!r}
    a, b = ours.reshape(-1), theirs.reshape(-1)
    excess = (a - b).abs() - (ATOL + RTOL * b.abs())
    if (excess > 0).any():
        i = int(excess.argmax())
        exact = float64()
        if exact is None:
            verdict = "float64 could not run"
        else:
            to_model = float((a.double() - exact.reshape(-1)).abs().max())
            to_reference = float((b.double() - exact.reshape(-1)).abs().max())
            verdict = (f"float64 is closer to {model_label} (largest distance {{to_model:.4g}}; "
                       f"{label} {{to_reference:.4g}})" if to_model <= to_reference else
                       f"float64 is closer to {label} (largest distance {{to_reference:.4g}}; "
                       f"{model_label} {{to_model:.4g}})")
        fails(f"output[{{i}}] differs by {{abs(float(a[i] - b[i])):.4g}}: {model_label} "
              f"{{float(a[i]):.6g}}, {label} {{float(b[i]):.6g}} "
              f"(atol {{ATOL:g}}, rtol {{RTOL:g}}); {{verdict}} (nnfuzz said: {{RECORDED}})")'''

#: The reference's NaN or Inf where the model's output is finite: nonfinite, the reference's side.
REFERENCE_NONFINITE = '''# nonfinite on the reference's side: its output holds NaN or Inf where the model's is finite.
if not torch.isfinite(ours).all():
    print("the model's output is not finite too: that is the model's nonfinite failure")
    sys.exit(0)
bad = (~torch.isfinite(theirs.reshape(-1))).nonzero().flatten()
if len(bad):
    fails(f"{{kind(theirs)}} in {who}'s output[{{int(bad[0])}}] where the {model_label} model's "
          f"output is finite")'''

#: A reference that is the model itself (a copy) under a setting, restored after each call.
WITH = '''import copy

copy_ = copy.deepcopy(model).eval()


def reference(*args, **kwargs):
    with {setting}:
        return copy_(*args, **kwargs)'''
FLAG = '''import copy

copy_ = copy.deepcopy(model).eval()


def reference(*args, **kwargs):
    before = {get}()
    {set}({value})
    try:
        return copy_(*args, **kwargs)
    finally:
        {set}(before)'''

#: The references the script rebuilds in plain torch, by the kind a reproducer records:
#: (what it is, the lines that build ``reference``, the inputs it is called on).
REFERENCES = {
    "fp16": ("a copy in float16 (weights and float inputs cast)",
             "import copy\nreference = copy.deepcopy(model).to(torch.float16).eval()",
             ", [x.half() if x.is_floating_point() else x for x in inputs]"),
    "bf16": ("a copy in bfloat16 (weights and float inputs cast)",
             "import copy\nreference = copy.deepcopy(model).to(torch.bfloat16).eval()",
             ", [x.bfloat16() if x.is_floating_point() else x for x in inputs]"),
    "int8": ("a copy with its Linear and recurrent layers dynamically quantized to int8",
             "import copy\nimport warnings\n\n"
             "warnings.simplefilter(\"ignore\")  # quantize_dynamic is deprecated\n"
             "holder = torch.nn.ModuleDict({{\"model\": copy.deepcopy(model)}})\n"
             "reference = torch.ao.quantization.quantize_dynamic(\n"
             "    holder, {{torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}}, dtype=torch.qint8)"
             "[\"model\"].eval()", ""),
    "reference()": ("the target's reference()",
                    "reference = target.reference()\nif isinstance(reference, torch.nn.Module):\n"
                    "    reference.eval()", ""),
    "autocast-bf16": ("the model under torch.autocast (bfloat16)",
                      WITH.format(setting='torch.autocast("cpu", dtype=torch.bfloat16)'), ""),
    "autocast-fp16": ("the model under torch.autocast (float16)",
                      WITH.format(setting='torch.autocast("cpu", dtype=torch.float16)'), ""),
    "sdpa-math": ("the model with SDPA forced to its math backend",
                  WITH.format(setting="torch.nn.attention.sdpa_kernel("
                                      "torch.nn.attention.SDPBackend.MATH)"), ""),
    "fastpath-off": ("the model with the MHA fast path off",
                     FLAG.format(get="torch.backends.mha.get_fastpath_enabled",
                                 set="torch.backends.mha.set_fastpath_enabled", value=False), ""),
    "deterministic": ("the model with deterministic algorithms",
                      FLAG.format(get="torch.are_deterministic_algorithms_enabled",
                                  set="torch.use_deterministic_algorithms", value=True), ""),
    "compile": ("torch.compile of the model",
                "reference = torch.compile(model, mode={mode!r}, dynamic=True)", ""),
    "export": ("the model's torch.export program (traced on this input)",
               "reference = torch.export.export(model, {export_args}).module()", ""),
}


def input_script(target: Target, failure: Failure, script_name: str) -> str:
    """The script's text for ``failure``, an input reproducer of ``target`` (see the module's
    docstring); a UsageError where its objective cannot be checked in plain torch."""
    assert target.path is not None
    names = failure.names
    keys = [f"input.{key}" for key in (names if names is not None else range(len(failure.inputs)))]
    call = "**dict(zip(%r, args))" % (list(names),) if names is not None else "*args"
    label = ""
    if failure.objective == "loss":
        label = ('\n    label = saved.get_tensor("target")[None] if "target" in saved.keys() '
                 'else None')
    return TEMPLATE.format(
        reproducer_name=Path(str(failure.path)).name, objective=failure.objective,
        detail=failure.detail.replace("\\", "\\\\").replace('"""', "'''"), script_name=script_name,
        target=str(target.path.resolve()), reproducer=str(Path(str(failure.path)).resolve()),
        folder=str(target.path.resolve().parent),
        keys=keys, label=label, call=call, check=_check(target, failure))


def _check(target: Target, failure: Failure) -> str:
    """The lines that check the reproducer's objective."""
    where = f"{failure.path}: --script"
    if judged_by(failure.objective, failure.metadata) == "disagree":
        return _disagree(target, failure, where)
    if failure.objective == "nonfinite":
        return NONFINITE.format()
    if failure.objective == "exception":
        return EXCEPTION.format()
    if failure.objective == "loss":
        if target.loss is None:
            raise UsageError(f"{where}: a loss failure needs loss(output, target) in the target.")
        return LOSS.format()
    if failure.objective not in [getattr(c, "__name__", "") for c in target.objectives]:
        raise UsageError(f"{where}: objective {failure.objective!r} is not in the target's "
                         "objectives(): define it there.")
    arguments = ("dict(zip(%r, inputs))" % (list(failure.names),) if failure.names
                 else "tuple(inputs)")
    return (f"# {failure.objective}: the target's own objective, on (inputs, output) as nnfuzz "
            f"calls it.\ncheck = {{c.__name__: c for c in target.objectives()}}"
            f"[{failure.objective!r}]\n"
            f"with torch.no_grad():\n    verdict = check({arguments}, run(model))\n"
            f"if bool(verdict.reshape(-1)[0]):\n"
            f"    fails(\"objective {failure.objective} returned True\")")


def _disagree(target: Target, failure: Failure, where: str) -> str:
    """The disagree check against the reference the reproducer names, rebuilt in plain torch."""
    kind = failure.metadata.get("reference", "") or "reference()"
    if kind not in REFERENCES:  # onnx needs ONNX Runtime, no-tf32 CUDA (the script: the CPU)
        raise UsageError(f"{where} cannot rebuild the {kind} reference in a few lines of torch "
                         "on the CPU: replay it with nnfuzz (nnfuzz replay TARGET.py REPRO).")
    if kind == "reference()" and target.reference is None:
        raise UsageError(f"{where}: the disagreement is with reference(): define it in the target.")
    what, build, args = REFERENCES[kind]
    mode = failure.metadata.get("compile_mode") or "default"
    names = failure.names
    export_args = (f"(), dict(zip({list(names)!r}, inputs))" if names is not None
                   else "tuple(inputs)")
    label = ("reference" if kind == "reference()" else
             f"compile ({mode})" if kind == "compile" and mode != "default" else kind)
    who = "the target's reference()" if kind == "reference()" else f"the {label} reference"
    check = REFERENCE_NONFINITE if failure.objective == "nonfinite" else COMPARE
    facts = dict(label=label, who=who, model_label=model_label(target.model),
                 tie_rule=kind in SAME_PRECISION,
                 recorded=failure.metadata.get("arbiter", "no verdict recorded"),
                 atol=float(failure.metadata.get("atol", DEFAULT_ATOL)),
                 rtol=float(failure.metadata.get("rtol", DEFAULT_RTOL)))
    return DISAGREE.format(
        what=what, reference=build.format(mode=None if mode == "default" else mode,
                                          export_args=export_args),
        reference_args=args, who=who, check=check.format(**facts))
