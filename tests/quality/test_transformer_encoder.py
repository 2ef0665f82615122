"""nn.TransformerEncoder as users have it: fuzzed on the kernels it really runs.

In eval mode PyTorch runs encoder layers on a fused fast path (and, by default,
on nested tensors between layers) unless a module has hooks; a fuzzer whose
instrumentation switches that path off judges another model. Reported upstream
as pytorch/pytorch#24816 and #41508: the fast path makes NaN of a sequence that
is padding only.
"""

from __future__ import annotations

from pathlib import Path

import torch

import nnfuzz
from tests.cli.support import invoke
from tests.targets import write_target
from tests.unit.test_instrumentation import EncoderClassifier, padded_tokens

PRE_LN_TARGET = '''
import torch
from tests.unit.test_instrumentation import EncoderClassifier, padded_tokens

def model():
    return EncoderClassifier(norm_first=True)

def seeds():
    return padded_tokens(16, all_padding_row=None)
'''


def test_an_encoder_classifier_with_default_settings_fuzzes_cleanly(tmp_path: Path) -> None:
    result = nnfuzz.fuzz(EncoderClassifier(), padded_tokens(16, all_padding_row=None),
                         out=tmp_path / "out", runs=4000, seed=0)
    assert not result.failures, result.failures[0].describe()
    assert result.corpus > 16


def test_the_all_padding_nan_of_a_pre_ln_encoder_is_found_and_replays_as_still_failing(
        tmp_path: Path, monkeypatch: object) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))  # type: ignore[attr-defined]
    target = write_target(tmp_path, PRE_LN_TARGET)
    out = tmp_path / "out"
    found = invoke("run", target, "--out", out, "--runs", 3000, "--stop-on-failure")
    assert found.exit_code == 1, found.output
    assert "==FAILURE== nonfinite: NaN in the output of module 'encoder.layers.0'" in found.stderr
    [reproducer] = (out / "crashes").glob("*.safetensors")
    assert (nnfuzz.load_failure(reproducer).inputs[0] == 0).all(), "a sequence of padding only"
    replayed = invoke("replay", target, reproducer)
    assert replayed.exit_code == 1, replayed.output
    assert "still fails" in replayed.stdout
    with torch.no_grad():  # the plain model, as the user runs it, is NaN there too
        assert torch.isnan(EncoderClassifier(norm_first=True).eval()(torch.zeros(1, 8).long())).all()
