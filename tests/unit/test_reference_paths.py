"""The model under autocast and under other execution paths as a reference (issue #27, 1-2).

``--reference autocast-bf16|autocast-fp16`` runs the model under ``torch.autocast``;
``fastpath-off``, ``sdpa-math``, ``deterministic`` and ``no-tf32`` run it with one backend
setting changed. Each is a deep copy run inside the setting, which is restored after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nnfuzz.errors import UsageError
from nnfuzz.references import build_reference
from tests.cli.support import assert_one_error_line, invoke
from tests.targets import HEALTHY, write_target

#: Two scores near 1000 told apart by their small gap: exact in float32, but bfloat16 (8
#: significant bits: steps of 4 at 1000) and float16 (steps of 0.5) lose the gap.
OFFSET = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Offset(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Linear(4, 2)
        with torch.no_grad():
            self.score.weight.copy_(torch.tensor([[10.0, 0, 0, 0], [0, 10.0, 0, 0]]))
            self.score.bias.fill_(1000.0)

    def forward(self, x):
        return self.score(x) - 1000.0

def model():
    return Offset()

def seeds():
    x = 0.1 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    x[:, 0] += 0.9
    return x
'''

#: A transformer encoder told which tokens are padding (from the first 0 on) that then
#: averages every position, padding too. In eval mode without grad, torch 2.13's fast path
#: (nested tensors) leaves the padded positions 0; the standard path computes them.
PAD_POOL = '''
import torch
from torch import nn

VOCAB = 20
BOUNDS = (0, VOCAB - 1)

class PadPool(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(16, 1)

    def forward(self, tokens):
        padding = (tokens == 0).cumsum(1) > 0
        hidden = self.encoder(self.embed(tokens), src_key_padding_mask=padding)
        return self.head(hidden.mean(1))

def model():
    return PadPool().eval()

def seeds():
    return torch.randint(1, VOCAB, (16, 8), generator=torch.Generator().manual_seed(0))
'''

#: The same encoder with its mask used as it should be: the mean over real tokens only.
CLEAN_TRANSFORMER = PAD_POOL.replace(
    "return self.head(hidden.mean(1))",
    "real = (~padding).unsqueeze(-1).float()\n"
    "        return self.head((hidden * real).sum(1) / real.sum(1).clamp(min=1))")

#: A value-output MLP (the autocast tolerances apply to values, not to class scores).
CLEAN_REGRESSION = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 1))

def seeds():
    return torch.rand(32, 16, generator=torch.Generator().manual_seed(0))
'''


def settings() -> tuple:
    return (torch.backends.mha.get_fastpath_enabled(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.is_autocast_enabled("cpu"),
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def found_and_replayed(tmp_path: Path, source: str, kind: str, *extra: object) -> str:
    """``nnfuzz run --reference kind`` finds a disagreement that replays as still failing; its
    failure line."""
    target = write_target(tmp_path, source)
    out = tmp_path / "out"
    result = invoke("run", target, "--out", out, "--reference", kind, "--objective", "disagree",
                    "--runs", "3000", "--stop-on-failure", "--no-minimize", *extra)
    assert result.exit_code == 1, result.output
    [saved] = list((out / "crashes").iterdir())
    replayed = invoke("replay", target, saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output
    return next(line for line in result.stderr.splitlines() if line.startswith("==FAILURE=="))


@pytest.mark.parametrize("kind", ["autocast-bf16", "autocast-fp16"])
def test_autocast_loses_the_gap_float32_keeps(tmp_path: Path, kind: str) -> None:
    line = found_and_replayed(tmp_path, OFFSET, kind)
    assert f"disagree: fp32 predicts 1, {kind} predicts 0" in line or \
        f"disagree: fp32 predicts 0, {kind} predicts 1" in line, line
    assert "; float64 agrees with fp32" in line, "exact in float32: the arbiter sides with it"


def test_fastpath_off_finds_the_padding_the_fast_path_zeroes(tmp_path: Path) -> None:
    line = found_and_replayed(tmp_path, PAD_POOL, "fastpath-off")
    assert "disagree: output[0] differs by" in line and "fastpath-off" in line, line


def test_the_fast_path_zeroes_padded_positions_in_torch_2_13() -> None:
    """What the finding above rests on, and the NaN of pytorch/pytorch#24816 on one layer."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, dropout=0.0)
    encoder = nn.TransformerEncoder(layer, 2).eval()
    src = torch.randn(2, 5, 8)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[0, 3:] = True
    paths = build_reference(encoder, "fastpath-off", names=("src", "src_key_padding_mask"))
    with torch.no_grad():
        fast = encoder(src, src_key_padding_mask=padding)
        standard = paths.run((src, padding))
        nan = layer.eval()(src, src_key_padding_mask=torch.ones(2, 5, dtype=torch.bool))
    assert torch.equal(fast[0, 3:], torch.zeros(2, 8)) and standard[0, 3:].abs().min() > 0
    torch.testing.assert_close(fast[~padding], standard[~padding])
    assert nan.isnan().all()  # fast path, fully padded rows: NaN (nonfinite's finding)
    assert torch.backends.mha.get_fastpath_enabled()


#: The transformer runs take 15 to 45 s for 2,000 executions on 2 busy cores.
SLOW = pytest.mark.slow


@pytest.mark.parametrize("source, kind, runs", [
    (CLEAN_REGRESSION, "autocast-bf16", 3000), (CLEAN_REGRESSION, "autocast-fp16", 3000),
    (CLEAN_REGRESSION, "deterministic", 3000), (HEALTHY, "deterministic", 3000),
    pytest.param(CLEAN_TRANSFORMER, "fastpath-off", 2000, marks=SLOW),
    pytest.param(CLEAN_TRANSFORMER, "sdpa-math", 2000, marks=SLOW),
    pytest.param(CLEAN_TRANSFORMER, "deterministic", 2000, marks=SLOW),
])
def test_a_clean_model_stays_clean(tmp_path: Path, source: str, kind: str, runs: int) -> None:
    target = write_target(tmp_path, source)
    before = settings()
    result = invoke("run", target, "--out", tmp_path / "out", "--reference", kind,
                    "--objective", "disagree", "--runs", runs, "--no-minimize")
    assert result.exit_code == 0, result.output
    assert "==FAILURE==" not in result.stderr
    assert settings() == before


@pytest.mark.parametrize("kind, lacks", [
    ("fastpath-off", "no nn.MultiheadAttention or nn.TransformerEncoderLayer"),
    ("sdpa-math", "never runs F.scaled_dot_product_attention"),
    ("no-tf32", "needs a CUDA device"),
])
def test_a_path_the_model_never_takes_is_one_error_line(tmp_path: Path, kind: str,
                                                         lacks: str) -> None:
    target = write_target(tmp_path, HEALTHY)
    result = invoke("run", target, "--out", tmp_path / "out", "--reference", kind, "--runs", "100")
    assert_one_error_line(result, f"--reference {kind}", lacks)


class FunctionalAttention(nn.Module):
    """Attention written with F.scaled_dot_product_attention, no attention module."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        return nn.functional.scaled_dot_product_attention(q, k, v).flatten(-2)


def test_sdpa_math_sees_a_functional_call_on_the_seeds() -> None:
    example = (torch.randn(2, 5, 8),)
    reference = build_reference(FunctionalAttention().eval(), "sdpa-math", example=example)
    with torch.no_grad():
        reference.run(example)
    with pytest.raises(UsageError, match="define seeds"):
        build_reference(FunctionalAttention(), "sdpa-math")
    with pytest.raises(UsageError, match="its seeds never call it"):
        build_reference(nn.Linear(8, 8), "sdpa-math", example=example)


class Raising(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("inside the setting")


@pytest.mark.parametrize("kind", ["autocast-bf16", "autocast-fp16", "deterministic",
                                  "fastpath-off", "sdpa-math"])
def test_the_setting_is_restored_after_each_call_even_when_it_raises(kind: str) -> None:
    before = settings()
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), Raising())
    reference = build_reference(model.eval(), kind, example=(torch.randn(2, 3, 8),))
    with pytest.raises(ValueError, match="inside the setting"):
        reference.run((torch.randn(2, 3, 8),))
    assert settings() == before
    calm = build_reference(model[0].eval(), kind, example=(torch.randn(2, 3, 8),))
    with torch.no_grad():
        assert calm.run((torch.randn(2, 3, 8),)).shape == (2, 3, 8)
    assert settings() == before


class Counting(nn.Linear):
    """Records which instance ran."""

    ran: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Counting.ran.append(id(self))
        return super().forward(x)


def test_the_reference_runs_a_copy_and_leaves_the_model_alone() -> None:
    model = Counting(4, 2)
    reference = build_reference(model, "autocast-bf16")
    assert reference.run((torch.rand(3, 4),)).dtype == torch.bfloat16
    assert Counting.ran and id(model) not in Counting.ran
    assert next(model.parameters()).dtype == torch.float32


def test_an_autocast_dtype_the_device_lacks_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(UsageError, match="autocast-fp16: torch.float16 autocast is not supported on cpu"):
        build_reference(nn.Linear(4, 2), "autocast-fp16")
