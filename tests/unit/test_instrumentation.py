"""Instrumentation never changes what the model computes, and reads any module output.

Each test runs one batch through the Executor and through the plain model, and
asserts the judged output is the plain one bit for bit (NaN where NaN): the
verdicts come from the model as the user runs it.
"""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn
from torch.nn.modules.module import _global_forward_hooks
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nnfuzz.execution import Executor
from nnfuzz.reading import same_outputs
from nnfuzz.objectives import Nonfinite

VOCAB, WIDTH, LENGTH = 30, 16, 8


def padded_tokens(count: int = 6, all_padding_row: int | None = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (count, LENGTH), generator=generator)
    lengths = torch.randint(2, LENGTH + 1, (count, 1), generator=generator)
    ids[torch.arange(LENGTH).view(1, -1) >= lengths] = 0
    if all_padding_row is not None:
        ids[all_padding_row] = 0
    return ids


class EncoderClassifier(nn.Module):
    """Token ids -> nn.TransformerEncoder with a padding mask -> masked mean -> classes."""

    def __init__(self, **layer_options: object) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, 2, 32, batch_first=True, **layer_options)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        padding = ids == 0
        hidden = self.encoder(self.embed(ids), src_key_padding_mask=padding)  # (B, L, W)
        keep = (~padding).unsqueeze(-1).float()
        return self.head((hidden * keep).sum(1) / keep.sum(1).clamp(min=1))


def run_both(model: nn.Module, *inputs: torch.Tensor, layers: list[str] | None = None):  # type: ignore[no-untyped-def]
    model.eval()
    with torch.no_grad():
        plain = model(*inputs)
    with Executor(model, layers=layers) as executor:
        return plain, executor.run(inputs)


def test_a_fast_path_pre_ln_encoder_is_judged_on_its_fast_path_nan() -> None:
    """Pre-LN layers take PyTorch's fused fast path in eval mode, unless a module has
    hooks: that kernel makes NaN of an all-padding row, the slow one does not."""
    plain, execution = run_both(EncoderClassifier(norm_first=True), padded_tokens())
    assert bool(torch.isnan(plain[2]).all()), "this torch's fast path no longer makes the NaN"
    assert same_outputs(execution.output, plain)
    assert [f.example for f in Nonfinite().judge(execution)] == [2]


def test_an_encoder_with_nested_tensors_between_layers_runs_and_is_read() -> None:
    plain, execution = run_both(EncoderClassifier(), padded_tokens(all_padding_row=None))
    assert same_outputs(execution.output, plain)
    assert "encoder.layers.0" in execution.event_modules, "the nested outputs were not read"
    assert not Nonfinite().judge(execution)


class PackedLSTM(nn.Module):
    """Packs by length, as variable-length RNN code does, and classifies the last state."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.lstm = nn.LSTM(WIDTH, 12, batch_first=True)
        self.head = nn.Linear(12, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1).clamp(min=1)
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        output, (hidden, _) = self.lstm(packed)
        unpacked, _ = pad_packed_sequence(output, batch_first=True, total_length=LENGTH)
        return self.head(hidden[-1] + unpacked.mean(1))


def test_an_lstm_on_packed_sequences_is_judged_as_it_runs_and_can_be_the_coverage_layer() -> None:
    ids = padded_tokens(all_padding_row=None)
    plain, execution = run_both(PackedLSTM(), ids, layers=["lstm"])
    assert same_outputs(execution.output, plain)
    # The PackedSequence unpacked in the batch's own order: (6, 8 steps x 12 units).
    assert execution.coverage.shape == (6, LENGTH * 12)
    assert bool((execution.coverage[ids.ne(0).sum(1) < LENGTH].abs().sum(1) > 0).all())


class SequenceFirst(nn.Module):
    """nn.LSTM's default layout: (T, B, H) out of the recurrent layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.lstm = nn.LSTM(4, 5)
        self.head = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x.transpose(0, 1))  # (T, B, 5)
        return self.head(output[-1]).squeeze(-1)  # (B,): a regression head


def test_sequence_first_modules_and_an_n_shaped_output_are_read() -> None:
    x = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(3))
    plain, execution = run_both(SequenceFirst(), x, layers=["lstm"])
    assert plain.shape == (3,)
    assert same_outputs(execution.output, plain)
    assert execution.coverage.shape == (3, 7 * 5)
    torch.testing.assert_close(execution.coverage[1].view(7, 5),
                               SequenceFirst().eval().lstm(x.transpose(0, 1))[0][:, 1].detach())
    assert execution.primary.shape == (3,)


class HookSensitive(nn.Module):
    """Computes something else when any module hook is registered (an observer effect
    nnfuzz's own hook would have): the check at the start must catch it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        #: Whether each call saw a hook registered.
        self.saw_hooks: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hooked = bool(_global_forward_hooks)
        self.saw_hooks.append(hooked)
        return self.linear(x) + (1.0 if hooked else 0.0)


def test_a_model_whose_outputs_change_under_the_hook_is_judged_on_a_plain_pass() -> None:
    model, x = HookSensitive().eval(), torch.rand(4, 3)
    with Executor(model) as executor:
        note = executor.confirm_unobserved((x,))
        assert note is not None and "runs twice" in note
        execution = executor.run((x,))
    with torch.no_grad():
        assert same_outputs(execution.output, model(x))
    assert "linear" in execution.event_modules, "coverage still comes from the instrumented pass"


def test_a_model_the_hook_leaves_alone_is_judged_in_one_pass() -> None:
    with Executor(EncoderClassifier(norm_first=True).eval()) as executor:
        assert executor.confirm_unobserved((padded_tokens(),)) is None
        assert not executor.judge_plainly


def test_no_nnfuzz_hook_runs_or_is_registered_during_a_plain_pass_not_even_another_executors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    hook = Executor._hook

    def counted(self: Executor, module: nn.Module, args: object, output: object) -> None:
        calls.append(type(module).__name__)
        hook(self, module, args, output)

    monkeypatch.setattr(Executor, "_hook", counted)
    model, x = HookSensitive().eval(), torch.rand(4, 3)
    with torch.no_grad():
        own = model.linear(x)  # what the model computes with no hook about
    before = set(_global_forward_hooks.values())
    with Executor(PackedLSTM().eval()), Executor(model) as executor:
        ours = set(_global_forward_hooks.values()) - before
        plain = executor.plain((x,))
        assert calls == [] and model.saw_hooks == [False]
        assert torch.equal(plain, own)
        assert set(_global_forward_hooks.values()) - before == ours, "both hooks are back"
        executor.run((x,))
        assert calls, "the hook runs again after the plain pass"


def test_the_hook_gathers_nothing_outside_a_pass_even_after_a_pass_that_raised() -> None:
    class Stop(Exception):
        pass

    seen: list[int] = []

    def watch(index: int, rows: torch.Tensor) -> None:
        seen.append(index)
        raise Stop

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU()).eval()
    with Executor(model) as executor:
        with pytest.raises(Stop):
            executor.watched((torch.rand(2, 3),), watch)
        model(torch.rand(2, 3))
        assert seen == [1], "the pass ended with the exception: the watch is not called again"
        assert executor.run((torch.rand(2, 3),)).event_modules == ["0", "1", "(model)"]


def test_leaving_an_executor_s_with_block_takes_its_hook_out() -> None:
    before = set(_global_forward_hooks.values())
    with Executor(PackedLSTM().eval()):
        assert len(set(_global_forward_hooks.values()) - before) == 1
    assert set(_global_forward_hooks.values()) - before == set()


def test_a_dropped_executor_takes_its_hook_with_it_at_once_without_the_cyclic_collector() -> None:
    """Nothing an executor sets up, nor any pass it ran, refers back to it: dropping the
    last reference removes its process-wide hook there and then."""
    from nnfuzz.guidance import gradient, gradient_of

    before = set(_global_forward_hooks.values())
    gc.disable()
    try:
        executor = Executor(SequenceFirst().eval(), layers=["lstm"])  # never closed
        x = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(3))
        executor.run((x,))
        executor.activations((x,))
        assert gradient(executor, (x,), lambda output: output) is not None
        lstm = executor.module_names.index("lstm")
        assert gradient_of(executor, (x,), lambda outputs, _: outputs[lstm].sum(1), (lstm,))
        assert len(set(_global_forward_hooks.values()) - before) == 1
        del executor
        assert set(_global_forward_hooks.values()) - before == set()
    finally:
        gc.enable()
