"""Deployment runtimes as disagree's reference: torch.export, ONNX Runtime, torch.compile (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

import nnfuzz
from nnfuzz.execution import Executor
from nnfuzz.objectives import Disagree, ObjectiveContext
from nnfuzz.references import Reference
from tests.cli.support import assert_one_error_line, invoke
from tests.targets import write_target

#: A model whose converted graph computes something else on purpose, where x[0] > 0.97:
#: the branch is taken only while the runtime {flag} traces it.
CONVERTED_DIFFERENTLY = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        y = self.body(x)
        if {flag}:
            y = torch.where(x[:, :1] > 0.97, -y, y)
        return y

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    return 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''

#: Data-dependent control flow: neither torch.export nor the ONNX exporter can trace it.
UNEXPORTABLE = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 4:
            return self.lin(x) * 2
        return self.lin(x)

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    return torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
'''


def found_and_replayed(tmp_path: Path, kind: str, flag: str) -> str:
    target = write_target(tmp_path, CONVERTED_DIFFERENTLY.replace("{flag}", flag))
    out = tmp_path / "out"
    run = invoke("run", target, "--out", out, "--reference", kind, "--objective", "disagree",
                 "--stop-on-failure", "--runs", 20_000)
    assert run.exit_code == 1, run.output
    [crash] = (out / "crashes").glob("*.safetensors")
    failure = nnfuzz.load_failure(crash)
    assert failure.objective == "disagree" and failure.metadata["reference"] == kind
    assert failure.metadata["reference_version"].startswith(("torch", "onnxruntime"))
    assert float(failure.inputs[0][0]) > 0.97, "the planted branch, and only it"
    replayed = invoke("replay", target, crash)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output
    return failure.detail


def test_an_export_that_changes_behaviour_is_found_and_replays_against_torch_export(
        tmp_path: Path) -> None:
    detail = found_and_replayed(tmp_path, "export", "torch.compiler.is_exporting()")
    assert "export predicts" in detail


def test_an_onnx_export_that_changes_behaviour_is_found_and_replays_against_onnx_runtime(
        tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install -e '.[onnx]'")
    detail = found_and_replayed(tmp_path, "onnx", "torch.onnx.is_in_onnx_export()")
    assert "onnx predicts" in detail


@pytest.mark.slow
def test_reference_compile_runs_on_the_cpu_and_finds_what_the_compiled_graph_does(
        tmp_path: Path) -> None:
    detail = found_and_replayed(tmp_path, "compile", "torch.compiler.is_compiling()")
    assert "compile predicts" in detail


@pytest.mark.parametrize("kind", ["export", "onnx"])
def test_a_model_that_cannot_be_exported_is_one_error_line_naming_where(
        tmp_path: Path, kind: str) -> None:
    if kind == "onnx":
        pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install -e '.[onnx]'")
    target = write_target(tmp_path, UNEXPORTABLE)
    result = invoke("run", target, "--out", tmp_path / "out", "--reference", kind, "--runs", 100)
    assert_one_error_line(result, "cannot convert the model at model.py:13",
                          "GuardOnDataDependentSymNode", "another --reference")


def test_an_input_the_runtime_raises_on_is_a_disagreement_found_alone(
        executor_for: Callable[..., Executor]) -> None:
    model = torch.nn.Linear(3, 4).eval()

    def runtime(inputs):  # type: ignore[no-untyped-def]
        if bool((inputs[0][:, 0] > 0.9).any()):
            raise RuntimeError("shape guard failed")
        return model(*inputs)

    objective = Disagree(ObjectiveContext(model=model, reference=Reference(
        "export", runtime, "export", "torch test")))
    batch = torch.rand(6, 3) * 0.5
    batch[4, 0] = 0.95
    judged = objective.evaluate(executor_for(model).run((batch,)))
    [finding] = judged.findings
    assert finding.example == 4 and finding.signature == "disagree:raised:RuntimeError"
    assert "raised RuntimeError: shape guard failed on an input the eager model accepts" in finding.detail


def test_runtimes_get_float32_tolerances_unless_given() -> None:
    from nnfuzz.objectives import context_for
    from nnfuzz.config import RUNTIME_ATOL
    from nnfuzz.target import in_memory

    target = in_memory(torch.nn.Linear(3, 2).eval(), torch.rand(4, 3), bounds=(0.0, 1.0))
    assert context_for(target, "export").atol == RUNTIME_ATOL
    assert context_for(target, "export", atol=0.5).atol == 0.5
    assert context_for(target, "fp16").atol == nnfuzz.objectives.DEFAULT_ATOL


class LoopsOverItsBatch(torch.nn.Module):
    """Per-example Python code (as the zoo's crop-to-ink CNN): tracing unrolls the loop and
    fixes the batch size the exporter saw."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.lin(row.unsqueeze(0)) * 2 for row in x])


@pytest.mark.parametrize("kind", ["export", "onnx"])
def test_a_model_that_fixes_its_batch_is_converted_for_one_example_and_run_on_each(
        kind: str) -> None:
    if kind == "onnx":
        pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install -e '.[onnx]'")
    from nnfuzz.runtimes import build_runtime

    torch.manual_seed(0)
    model = LoopsOverItsBatch().eval()
    runtime = build_runtime(kind, model, (torch.rand(4, 4),), None)
    batch = torch.rand(7, 4)
    with torch.no_grad():
        assert torch.allclose(runtime((batch,)), model(batch), atol=1e-5)


def test_an_example_the_eager_model_raises_on_alone_is_not_a_crash_of_disagree(
        executor_for: Callable[..., Executor]) -> None:
    """nn.TransformerEncoder's fast path raises on an all-padding example alone that it runs in
    a batch; re-running a candidate alone must not stop the run (the exception objective's)."""

    class RaisesAlone(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] == 1 and bool(x[0, 0] > 0.9):
                raise RuntimeError("to_padded_tensor: at least one constituent tensor")
            return x * 2

    model = RaisesAlone().eval()
    objective = Disagree(ObjectiveContext(model=model, reference=Reference(
        "export", lambda inputs: -inputs[0] if bool((inputs[0][:, 0] > 0.9).any())
        else inputs[0] * 2, "export", "torch test")))
    batch = torch.rand(5, 3) * 0.5
    batch[2, 0] = 0.95
    assert objective.evaluate(executor_for(model).run((batch,))).findings == []
