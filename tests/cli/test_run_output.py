"""``nnfuzz run``: exit codes, the output folder (README: *Output folder*, *Exit codes*) and resuming."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result

import nnfuzz
from nnfuzz.storage import TEMP_PREFIX, read_input_file

from targets import DEAD_RELU, write_target

from .support import invoke

RUN_JSON_KEYS = {"nnfuzz", "torch", "numpy", "faiss", "python", "device", "options", "target_sha256",
                 "run_seed", "start_time", "end_time", "stop_reason", "totals"}
STATS_KEYS = {"elapsed_s", "execs", "execs_per_s", "corpus", "coverage", "failures"}
REPRODUCER_METADATA = {"nnfuzz_version", "torch_version", "target_sha256", "run_seed", "mutations",
                       "distance", "found_after_execs", "found_after_s"}
DEAD_RELU_SEEDS = 8


@dataclass(frozen=True)
class Fuzzed:
    target: Path
    out: Path
    result: Result


def fuzz_dead_relu(folder: Path) -> Fuzzed:
    target = write_target(folder, DEAD_RELU)
    out = folder / "out"
    return Fuzzed(target, out, invoke("run", target, "--runs", 20000, "--stop-on-failure", "--out", out))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    """DEAD_RELU fuzzed until its first failure, once for the module (read, never changed)."""
    return fuzz_dead_relu(tmp_path_factory.mktemp("dead-relu"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_healthy_target_exits_0_after_its_runs(tmp_path: Path, healthy_target: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", healthy_target, "--runs", 2000, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "ERROR" not in result.output
    assert "==FAILURE==" not in result.output
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"] == "reached --runs"
    assert record["totals"]["execs"] == 2000
    assert not list((out / "crashes").iterdir())


def test_dead_relu_exits_1_and_prints_the_failure_with_its_reproducer(fuzzed: Fuzzed) -> None:
    result = fuzzed.result
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "ERROR" not in result.output
    failures = [line for line in result.stderr.splitlines() if line.startswith("==FAILURE==")]
    assert len(failures) == 1, result.stderr
    assert "nonfinite" in failures[0] and "NaN" in failures[0]
    (crash,) = (fuzzed.out / "crashes").glob("*.safetensors")
    assert str(crash) in failures[0]


def test_dead_relu_writes_one_nonfinite_reproducer_with_its_metadata(fuzzed: Fuzzed) -> None:
    crashes = list((fuzzed.out / "crashes").iterdir())
    assert len(crashes) == 1, crashes
    assert re.fullmatch(r"nonfinite-[0-9a-f]{16}\.safetensors", crashes[0].name), crashes[0].name
    failure = nnfuzz.load_failure(crashes[0])
    assert failure.objective == "nonfinite"
    assert failure.inputs[0].shape == failure.seed[0].shape == (16,)
    assert REPRODUCER_METADATA <= set(failure.metadata), sorted(failure.metadata)
    assert failure.metadata["target_sha256"] == sha256(fuzzed.target)
    assert failure.metadata["run_seed"] == "0"


def test_dead_relu_writes_its_corpus_as_loadable_content_named_files(fuzzed: Fuzzed) -> None:
    files = list((fuzzed.out / "corpus").iterdir())
    assert files
    for path in files:
        assert re.fullmatch(r"[0-9a-f]{64}\.safetensors", path.name), path.name
        inputs, _ = read_input_file(path)
        assert len(inputs) == 1 and inputs[0].shape == (16,)


def test_dead_relu_writes_run_json_saying_what_ran_and_why_it_stopped(fuzzed: Fuzzed) -> None:
    record = json.loads((fuzzed.out / "run.json").read_text())
    assert RUN_JSON_KEYS <= set(record), sorted(RUN_JSON_KEYS - set(record))
    assert record["nnfuzz"] == nnfuzz.__version__
    assert record["device"] == "cpu"
    assert record["target_sha256"] == sha256(fuzzed.target)
    assert record["run_seed"] == 0
    assert record["options"]["runs"] == 20000
    assert record["options"]["stop_on_failure"] is True
    assert datetime.fromisoformat(record["start_time"]) <= datetime.fromisoformat(record["end_time"])
    assert "failure" in record["stop_reason"]
    assert record["totals"]["failures"] == 1
    assert 0 < record["totals"]["execs"] <= 20000


def test_dead_relu_writes_stats_jsonl_one_json_object_per_interval(fuzzed: Fuzzed) -> None:
    lines = (fuzzed.out / "stats.jsonl").read_text().splitlines()
    assert lines
    records = [json.loads(line) for line in lines]
    for record in records:
        assert STATS_KEYS <= set(record), record
    assert [r["execs"] for r in records] == sorted(r["execs"] for r in records)
    assert records[-1]["failures"] == 1


def test_running_the_same_command_again_resumes_and_exits_0_for_the_known_failure(
        tmp_path: Path) -> None:
    first = fuzz_dead_relu(tmp_path)
    assert first.result.exit_code == 1, first.result.output
    corpus_before = {p.name: p.read_bytes() for p in (first.out / "corpus").iterdir()}
    crashes_before = {p.name: p.read_bytes() for p in (first.out / "crashes").iterdir()}

    again = invoke("run", first.target, "--runs", 20000, "--stop-on-failure", "--out", first.out)

    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output and "ERROR" not in again.output
    assert "==FAILURE==" not in again.output
    # The old corpus is the starting corpus, and the failure is known.
    starting = re.search(r"corpus (\d+)\b", again.stderr)
    assert starting and int(starting[1]) == DEAD_RELU_SEEDS + len(corpus_before), again.stderr
    assert re.search(r"\b1 known failure", again.stderr), again.stderr
    corpus_after = {p.name: p.read_bytes() for p in (first.out / "corpus").iterdir()}
    assert corpus_after.items() >= corpus_before.items()
    assert {p.name: p.read_bytes() for p in (first.out / "crashes").iterdir()} == crashes_before
    record = json.loads((first.out / "run.json").read_text())
    assert record["stop_reason"] == "reached --runs"
    assert record["totals"]["failures"] == 0
    assert not list(first.out.rglob(f"{TEMP_PREFIX}*"))
