"""Coverage that cannot tell the seeds apart is said, and moved to a layer that can."""

from __future__ import annotations

import json
from pathlib import Path

from nnfuzz.config import FuzzConfig
from nnfuzz.drivers.in_process import InProcess
from nnfuzz.status import RecordingReporter
from nnfuzz.target import load_target
from tests.targets import ZERO_HEAD, write_target


def fuzzer(tmp_path: Path, **options: object) -> tuple[InProcess, RecordingReporter]:
    said = RecordingReporter()
    config = FuzzConfig(runs=2000, **options)  # type: ignore[arg-type]
    return InProcess(load_target(write_target(tmp_path, ZERO_HEAD)), config,
                     out=tmp_path / "out", reporter=said), said


def test_a_constant_output_is_warned_about_and_coverage_moves_to_the_last_varying_layer(
        tmp_path: Path) -> None:
    run, said = fuzzer(tmp_path)
    result = run.run()
    run.close()
    [warning] = [w for w in said.warnings if w.startswith("coverage:")]
    assert "the model's output hardly varies over the seeds" in warning
    assert any("coverage from layer 'body' instead" in info for info in said.infos), said.infos
    assert run.engine.executor.layers == ["body"]  # body.3's output, as the Sequential returns it
    assert result.coverage > 16 * 4, "the corpus should grow on a layer that varies"
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["coverage_layers"] == ["body"]


def test_a_constant_layer_chosen_with_layer_is_warned_about_and_kept(tmp_path: Path) -> None:
    run, said = fuzzer(tmp_path, layers=("head",))
    run.run()
    run.close()
    assert any("layer 'head' hardly varies" in w and "choose another --layer" in w
               for w in said.warnings), said.warnings
    assert run.engine.executor.layers == ["head"]
