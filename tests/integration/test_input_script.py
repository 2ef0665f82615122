"""``nnfuzz replay TARGET.py REPRO --script FILE`` for an input reproducer (issue #27 item 6):
a plain PyTorch script (no nnfuzz) that exits 1 with one line saying what fails while the
planted bug is there, and 0 once the target file is fixed. One planted bug per objective."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import nnfuzz

from tests.quality.test_objectives import NEAR_TIE, UNSTABLE_CROSS_ENTROPY, USER_OBJECTIVE
from tests.targets import DEAD_RELU

from tests.cli.support import assert_one_error_line, invoke

#: Raises on inputs whose first feature passes 0.9; the seeds stay below 0.5.
RAISES = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        if bool((x[:, 0] > 0.9).any()):
            raise ValueError("the first feature is too large")
        return self.head(x)

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    return 0.5 * torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
'''

#: objective: (buggy source, (bug, fix), run options, the script's line while it fails).
CASES = {
    "nonfinite": (DEAD_RELU, ("/ h.std(1, keepdim=True)", "/ (h.std(1, keepdim=True) + 1e-6)"),
                  (), "NaN in output 0 (first made by module 'head')"),
    "exception": (RAISES, ("> 0.9).any()", "> 2.0).any()"), (),
                  "the model raised ValueError: the first feature is too large"),
    "disagree": (NEAR_TIE.replace("{tie}", "0.9"), ("-0.9, -100.0", "-2.0, -100.0"),
                 ("--reference", "bf16"), "fp32 predicts "),
    "output_below_four": (USER_OBJECTIVE.replace("{fix}", ""),
                          ("return net \n", "return nn.Sequential(net, nn.Hardtanh(-3, 3))\n"),
                          (), "objective output_below_four returned True"),
    "loss": (UNSTABLE_CROSS_ENTROPY.replace("{fix}", ""),
             ("torch.log(probabilities )", "torch.log(probabilities.clamp(min=1e-30))"),
             ("--objective", "loss"), "the loss is NaN"),
}


def script_run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script)], cwd=script.parent.parent,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("objective", list(CASES))
def test_the_script_fails_on_the_buggy_target_and_passes_on_the_fixed_one(
        tmp_path: Path, objective: str) -> None:
    source, (bug, fix), options, line = CASES[objective]
    target = tmp_path / "target.py"
    target.write_text(textwrap.dedent(source))
    out = tmp_path / "out"
    found = invoke("run", target, "--runs", 20000, "--stop-on-failure", "--out", out, *options)
    assert found.exit_code == 1, found.output
    [saved] = sorted((out / "crashes").glob(f"{objective}-*.safetensors"))
    script = tmp_path / "repro.py"
    written = invoke("replay", target, saved, "--script", script, "--repeat", 1)
    assert written.exit_code == 1 and "still fails" in written.stdout, written.output
    assert f"wrote {script}" in written.stderr
    text = script.read_text()
    assert "import nnfuzz" not in text and "from nnfuzz" not in text, "plain PyTorch only"
    failing = script_run(script)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert failing.stdout.splitlines()[-1].startswith(line), failing.stdout + failing.stderr
    if objective == "disagree":  # the float64 arbiter's verdict now, and nnfuzz's at the find
        verdict = nnfuzz.load_failure(saved).metadata["arbiter"]
        assert f"; {verdict} (nnfuzz said: {verdict})" in failing.stdout, failing.stdout
    assert bug in target.read_text()
    target.write_text(target.read_text().replace(bug, fix))
    fixed = script_run(script)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.splitlines()[-1] == f"fixed: {objective} no longer fires on this input"


def test_a_reference_the_script_cannot_rebuild_is_one_error_line(tmp_path: Path) -> None:
    """An ONNX disagreement needs ONNX Runtime: --script says so rather than guess."""
    target = tmp_path / "target.py"
    target.write_text(NEAR_TIE.replace("{tie}", "0.9"))
    x = (torch.zeros(16),)
    saved = nnfuzz.Failure(inputs=x, seed=x, objective="disagree",
                           detail="fp32 predicts 0, onnx predicts 1", signature="disagree:0->1",
                           metadata={"reference": "onnx"}).save(tmp_path / "disagree.safetensors")
    assert_one_error_line(invoke("replay", target, saved, "--script", tmp_path / "repro.py"),
                          "cannot rebuild the onnx reference")
    assert not (tmp_path / "repro.py").exists()
