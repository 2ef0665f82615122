"""Two nights of a nightly job, as issue #4 tells it: find, minimize, fix, replay, resume."""

from __future__ import annotations

import json
from pathlib import Path

import nnfuzz
from tests.cli.support import invoke
from tests.targets import DEAD_RELU, write_target

#: The fix: an epsilon in the standard deviation, as the model should have had.
FIXED = DEAD_RELU.replace("/ h.std(1, keepdim=True)", "/ (h.std(1, keepdim=True) + 1e-6)")


def test_two_nightly_runs_find_minimize_then_after_the_fix_replay_fixed_and_resume_quietly(
        tmp_path: Path) -> None:
    assert FIXED != DEAD_RELU
    target = write_target(tmp_path, DEAD_RELU)
    out = tmp_path / "nightly"

    first = invoke("run", target, "--out", out, "--runs", 20000)
    assert first.exit_code == 1, first.output
    (crash,) = sorted((out / "crashes").glob("*.safetensors"))
    failure = nnfuzz.load_failure(crash)
    assert failure.objective == "nonfinite" and "minimized toward its seed" in first.stderr
    assert "changed values" in failure.metadata["minimized"]
    corpus_after_first = {p.name for p in (out / "corpus").iterdir()}

    still = invoke("replay", target, out / "crashes")
    assert still.exit_code == 1 and "still fails" in still.output

    target.write_text(FIXED)
    fixed = invoke("replay", target, out / "crashes")
    assert fixed.exit_code == 0, fixed.output
    assert f"{crash}: fixed:" in fixed.output

    second = invoke("run", target, "--out", out, "--runs", 20000, "--seed", 1)
    assert second.exit_code == 0, second.output
    assert "==FAILURE==" not in second.output
    assert "changed since the last run" in second.stderr, "the edited target is noticed"
    corpus_after_second = {p.name for p in (out / "corpus").iterdir()}
    assert corpus_after_second > corpus_after_first, "the second night adds to the corpus"

    record = json.loads((out / "run.json").read_text())
    assert [run["execs"] for run in record["runs"]] == [20000, 20000]
    assert [run["new_failures"] for run in record["runs"]] == [1, 0]
    assert record["runs"][0]["target_sha256"] != record["runs"][1]["target_sha256"]
    assert record["totals"]["execs"] == 40000 and record["totals"]["runs"] == 2
