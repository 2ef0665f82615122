"""Each objective finds its planted bug, and its reproducer replays: exit 1 against
the buggy target, exit 0 against the fixed one (issue #3)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import nnfuzz
from nnfuzz.cli import main

#: A linear classifier on [0, 1]^8 whose weights grow with the input index:
#: bright inputs make logit gaps above 104, where float32 softmax underflows to 0.
UNSTABLE_CROSS_ENTROPY = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    head = nn.Linear(8, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[30.0] * 8, [0.0] * 8, [-30.0] * 8]))
        head.bias.zero_()
    return head

def seeds():
    return 0.1 * torch.rand(8, 8, generator=torch.Generator().manual_seed(0))

def targets():
    return torch.full((8,), 1)

def loss(output, target):
    probabilities = torch.softmax(output, -1)
    one_hot = nn.functional.one_hot(target, 3).float()
    return -(one_hot * torch.log(probabilities {fix})).sum(1)
'''

#: Tokens pooled safely, then scaled by their norm: sqrt at 0 has a NaN gradient,
#: so an all-padding sequence breaks the embedding's gradient, not the output.
NORM_GRADIENT = '''
import torch
from torch import nn

BOUNDS = (0, 19)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, tokens):
        mask = (tokens != 0).float()
        pooled = (self.embed(tokens) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        scale = torch.sqrt(pooled.pow(2).sum(1, keepdim=True) {fix})
        return self.head(pooled) * scale

def model():
    return Net()

def seeds():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 20, (8, 6), generator=g)
    tokens[:, 4:] = 0
    return tokens

def targets():
    return torch.zeros(8, dtype=torch.long)

def loss(output, target):
    return nn.functional.cross_entropy(output, target, reduction="none")
'''

#: Class 1 is class 0 plus (x[0] - 0.9): the seeds (x[0] <= 0.5) are class 0 by a
#: wide margin, but near x[0] = 0.9 the two differ by less than a reduced precision
#: resolves. The fix moves the tie to x[0] = 2, outside the bounds.
NEAR_TIE = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    torch.manual_seed(0)
    head = nn.Linear(16, 3)
    with torch.no_grad():
        row = torch.rand(16) - 0.5
        head.weight.copy_(torch.stack([row, row, -row]))
        head.weight[1, 0] += 1.0
        head.bias.copy_(torch.tensor([0.0, -{tie}, -100.0]))
    return head

def seeds():
    x = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    x[:, 0] *= 0.5
    return x
'''

#: A user objective: the first output must stay below 4; bright inputs exceed it.
USER_OBJECTIVE = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    net = nn.Linear(6, 2)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()
    return net {fix}

def seeds():
    return 0.3 * torch.rand(8, 6, generator=torch.Generator().manual_seed(0))

def output_below_four(inputs, output):
    return output[:, 0] >= 4.0

def objectives():
    return [output_below_four]
'''


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def fuzz_then_replay(tmp_path: Path, buggy: str, fixed: str, *options: str) -> nnfuzz.Failure:
    """Run the buggy target to its first failures; replay the first against both versions."""
    runner = CliRunner()
    target = write(tmp_path, "target.py", buggy)
    out = tmp_path / "out"
    ran = runner.invoke(main, ["run", str(target), "--out", str(out), "--runs", "30000",
                               "--stop-on-failure", *options])
    assert ran.exit_code == 1, ran.output
    saved = sorted((out / "crashes").iterdir(), key=lambda p: nnfuzz.load_failure(p).signature)
    assert saved, ran.output
    reproducer = saved[0]
    still = runner.invoke(main, ["replay", str(target), str(reproducer)])
    assert still.exit_code == 1 and "still fails" in still.output, still.output
    repaired = write(tmp_path, "fixed.py", fixed)
    fixed_run = runner.invoke(main, ["replay", str(repaired), str(reproducer)])
    assert fixed_run.exit_code == 0 and "fixed" in fixed_run.output, fixed_run.output
    return nnfuzz.load_failure(reproducer)


def test_a_nan_loss_from_an_unstable_cross_entropy_is_found_and_replays(tmp_path: Path) -> None:
    failure = fuzz_then_replay(tmp_path, UNSTABLE_CROSS_ENTROPY.replace("{fix}", ""),
                               UNSTABLE_CROSS_ENTROPY.replace("{fix}", ".clamp(min=1e-30)"),
                               "--objective", "loss")
    assert failure.objective == "loss" and failure.signature == "loss:loss"
    assert "the loss is NaN" in failure.detail
    assert failure.label is not None and int(failure.label) == 1


def test_a_nan_parameter_gradient_is_found_and_blames_the_first_parameter(tmp_path: Path) -> None:
    failure = fuzz_then_replay(tmp_path, NORM_GRADIENT.replace("{fix}", ""),
                               NORM_GRADIENT.replace("{fix}", "+ 1e-12"), "--objective", "loss")
    assert failure.signature == "loss:param-grad:embed.weight"
    assert "parameter 'embed.weight' is NaN" in failure.detail
    assert (failure.inputs[0] == 0).all(), "only an all-padding sequence has a zero norm"


@pytest.mark.parametrize("precision", ["int8", "fp16", "bf16"])
def test_a_disagreement_with_a_reduced_precision_copy_is_found_and_replays(
        tmp_path: Path, precision: str) -> None:
    failure = fuzz_then_replay(tmp_path, NEAR_TIE.replace("{tie}", "0.9"),
                               NEAR_TIE.replace("{tie}", "2.0"), "--reference", precision)
    assert failure.objective == "disagree"
    assert failure.metadata["reference"] == precision
    assert failure.signature == f"disagree:{precision}:classes:reference-off"
    assert "fp32 predicts " in failure.detail and f", {precision} predicts" in failure.detail
    assert failure.detail.endswith("; float64 agrees with fp32"), failure.detail


def test_a_user_objective_is_found_named_and_replays(tmp_path: Path) -> None:
    failure = fuzz_then_replay(tmp_path, USER_OBJECTIVE.replace("{fix}", ""),
                               USER_OBJECTIVE.replace("{fix}", "if False else None").replace(
                                   "return net if False else None", "return nn.Sequential(net, nn.Hardtanh(-3, 3))"))
    assert failure.objective == "output_below_four"
    assert failure.path is not None and failure.path.name.startswith("output_below_four-")
