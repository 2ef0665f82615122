"""disagree's NaN filtering, its signatures and its float64 arbiter (issue #27 items 3-5).

An example where the reference's output is not finite is no difference of values; a
disagreement's signature is the reference kind, the output compared and the side float64
says is off (further class pairs are hits of it); the verdict of a float64 copy of the
model ends the failure's detail and is its ``arbiter`` metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nnfuzz.execution import Executor
from nnfuzz.objectives import Disagree, ObjectiveContext
from nnfuzz.objectives.arbiter import Arbiter
from nnfuzz.references import Reference, build_reference
from nnfuzz.reproducer import load_failure
from tests.cli.support import invoke
from tests.targets import write_target
from tests.unit.test_reference_paths import OFFSET

#: (x0 + x1) * 40000 overflows float16 (65504) from x0 + x1 > 1.64; the seeds stay below
#: 1.5. As values, h / 40000; as classes, [h - h, 1 + x0]: class 1 in float32, NaN (Inf -
#: Inf) in class 0 where float16 overflows, which argmax would call class 0.
OVERFLOW = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)
CLASSES = {classes}

class Overflow(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(torch.tensor([[4e4, 4e4, 0.0, 0.0]]))

    def forward(self, x):
        h = self.up(x)
        return torch.cat([h - h, 1.0 + x[:, :1]], 1) if CLASSES else h / 4e4

def model():
    return Overflow()

def seeds():
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    x[:, :2] *= 0.75
    return x
'''

#: Three scores near 1000 told apart by gaps of 10·x: bfloat16 ties them, and its argmax
#: then takes the lower class, so the class pairs vary (1->0, 2->0, 2->1).
THREE_CLASSES = OFFSET.replace("nn.Linear(4, 2)", "nn.Linear(4, 3)").replace(
    "torch.tensor([[10.0, 0, 0, 0], [0, 10.0, 0, 0]])", "10.0 * torch.eye(3, 4)").replace(
    "x[:, 0] += 0.9", "x[torch.arange(16), torch.arange(16) % 3] += 0.9")


def overflow_model(classes: bool) -> nn.Module:
    namespace: dict = {}
    exec(OVERFLOW.format(classes=classes), namespace)  # noqa: S102 - the test's own source
    return namespace["model"]().eval()


@pytest.mark.parametrize("kind", ["fp16", "autocast-fp16"])
@pytest.mark.parametrize("classes", [True, False])
def test_a_reference_that_overflows_is_nonfinite_on_its_side_not_a_disagreement(
        kind: str, classes: bool) -> None:
    model = overflow_model(classes)
    reference = build_reference(model, kind, example=(torch.rand(2, 4),))
    inputs = torch.tensor([[0.1, 0.2, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5], [0.9, 0.9, 0.0, 0.0]])
    with torch.no_grad():
        assert torch.isfinite(model(inputs)).all()
        assert not torch.isfinite(reference.run((inputs,))[1:]).all(), "the premise: it overflows"
    objective = Disagree(ObjectiveContext(model=model, reference=reference))
    with Executor(model) as executor:
        findings = objective.judge(executor.run((inputs,)))
    assert [f.example for f in findings] == [1, 2]
    assert {(f.objective, f.signature) for f in findings} == {
        ("nonfinite", f"nonfinite:reference:{kind}")}
    assert all(f.metadata == {"judged_by": "disagree"} for f in findings)
    assert findings[0].detail.startswith(f"{'NaN' if classes else 'Inf'} in the {kind} "
                                         "reference's output[0] where the fp32 model's output "
                                         "is finite"), findings[0].detail


def test_an_overflowing_autocast_reference_replays_and_scripts_as_nonfinite(
        tmp_path: Path) -> None:
    """Found as nonfinite on the reference's side, minimized, replayed (still fails) and
    scripted (exit 1); a model that no longer overflows under autocast: fixed, script exit 0."""
    target = write_target(tmp_path, OVERFLOW.format(classes=True))
    out = tmp_path / "out"
    result = invoke("run", target, "--out", out, "--reference", "autocast-fp16",
                    "--objective", "disagree", "--runs", "1000", "--stop-on-failure")
    assert result.exit_code == 1, result.output
    [saved] = list((out / "crashes").glob("*.safetensors"))
    failure = load_failure(saved)
    assert saved.name.startswith("nonfinite-")
    assert failure.signature == "nonfinite:reference:autocast-fp16", failure.signature
    assert failure.metadata["judged_by"] == "disagree"
    assert failure.metadata["reference"] == "autocast-fp16"
    replayed = invoke("replay", target, saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output
    assert "autocast-fp16 reference's output" in replayed.output, replayed.output
    script = tmp_path / "repro.py"
    written = invoke("replay", target, saved, "--script", script, "--repeat", 1)
    assert written.exit_code == 1 and f"wrote {script}" in written.stderr, written.output
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert ran.returncode == 1 and "autocast-fp16 reference's output" in ran.stdout, ran
    # Fixed: weights small enough that float16 holds the sum (the model computes the same
    # classes), so nothing overflows under autocast any more.
    target.write_text(target.read_text().replace("4e4, 4e4", "1.0, 1.0"))
    replayed = invoke("replay", target, saved)
    assert replayed.exit_code == 0 and "fixed" in replayed.output, replayed.output
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert ran.returncode == 0 and "fixed" in ran.stdout, ran


def test_class_pairs_are_hits_of_one_signature_with_the_arbiters_verdict(tmp_path: Path) -> None:
    target = write_target(tmp_path, THREE_CLASSES)
    out = tmp_path / "out"
    result = invoke("run", target, "--out", out, "--reference", "autocast-bf16", "--objective",
                    "disagree", "--runs", "1500", "--no-minimize")
    assert result.exit_code == 1, result.output
    [saved] = list((out / "crashes").glob("*.safetensors"))
    failure = load_failure(saved)
    assert failure.signature == "disagree:autocast-bf16:classes:reference-off"
    assert failure.detail.endswith("; float64 agrees with fp32"), failure.detail
    assert failure.metadata["arbiter"] == "float64 agrees with fp32"
    hits = json.loads((out / "run.json").read_text())["totals"]["hits"]
    assert list(hits) == [failure.signature] and hits[failure.signature] >= 2, hits
    replayed = invoke("replay", target, saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output
    assert "float64 agrees with fp32" in replayed.output, replayed.output
    failure.signature = "disagree:1->0"  # as nnfuzz saved it before signatures named the kind
    legacy = failure.save(tmp_path / "legacy.safetensors")
    replayed = invoke("replay", target, legacy)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output


def test_two_class_pairs_in_one_batch_are_one_signature() -> None:
    """The reference shifts every class by one: 0->1 and 1->2 are one bug of the reference."""
    model = nn.Identity()
    objective = Disagree(ObjectiveContext(model=model, reference=Reference(
        "shifted", lambda inputs: inputs[0].roll(1, -1), "reference()")))
    inputs = torch.tensor([[3.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    with Executor(model) as executor:
        findings = objective.judge(executor.run((inputs,)))
    assert [f.detail.split(";")[0] for f in findings] == ["model predicts 0, shifted predicts 1",
                                                         "model predicts 1, shifted predicts 2"]
    assert {f.signature for f in findings} == {"disagree:reference():classes:reference-off"}
    assert all(f.metadata == {"arbiter": "float64 agrees with model"} for f in findings)


class Float32Only(nn.Module):
    def forward(self, x):
        if x.dtype == torch.float64:
            raise RuntimeError("no float64 kernel")
        return x * 2


def test_the_arbiter_on_values_and_where_float64_cannot_run() -> None:
    x = torch.tensor([[1.0]])  # one value: not class scores
    arbiter = Arbiter(nn.Identity(), None, "fp32", "bf16")
    assert arbiter.judge((x,), x, x + 0.5, None) == (
        "float64 is closer to fp32 (largest distance 0; bf16 0.5)", "reference-off")
    assert arbiter.judge((x,), x + 0.5, x - 0.5, None)[1] == "reference-off"  # a tie: the model
    assert arbiter.judge((x,), x + 0.5, x + 0.25, None) == (
        "float64 is closer to bf16 (largest distance 0.25; fp32 0.5)", "model-off")
    scores = torch.tensor([[0.0, 2.0, 1.0]])
    assert Arbiter(nn.Identity(), None, "fp32", "bf16").judge(
        (scores,), torch.tensor([[3.0, 0, 0]]), torch.tensor([[0, 0, 3.0]]), None) == (
        "float64 predicts 1, agreeing with neither", "both-off")
    assert Arbiter(Float32Only(), None, "fp32", "bf16").judge((x,), x * 2, x, None) == (
        "float64 could not run: RuntimeError: no float64 kernel", "unarbitrated")


@pytest.mark.parametrize("kind, gap, found", [
    ("sdpa-math", 2e-7, False),      # float32 against float32: a tie within 1e-4 is no flip
    ("compile", 2e-7, False),
    ("sdpa-math", 1e-2, True),       # beyond the tolerance: a flip of a path
    ("reference()", 2e-7, True),     # the target's own reference: every flip counts
    ("bf16", 2e-7, True),            # a cast copy: flips at ties are what it is for
])
def test_a_class_flip_at_a_tie_counts_only_beyond_float32_tolerance_for_float32_references(
        kind: str, gap: float, found: bool) -> None:
    """A random-init GPT-2's top two logits 2e-7 apart flipped under sdpa-math
    (benchmarks/precision.py): kernels that sum in another order flip such ties."""
    model = nn.Identity()
    ours = torch.tensor([[0.755 + gap, 0.755, 0.1]])
    swapped = Reference(kind, lambda inputs: inputs[0][:, [1, 0, 2]], kind)
    objective = Disagree(ObjectiveContext(model=model, reference=swapped, atol=1e-4, rtol=1e-4))
    with Executor(model) as executor:
        findings = objective.judge(executor.run((ours,)))
    assert bool(findings) == found, findings
