"""replay's verdicts (still fails, flaky, fixed, error) and its JSON and JUnit reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

import nnfuzz
from tests.targets import write_target

from .support import invoke

#: NaN on every call, on every second call, never, or raising: the same input, four fates.
TARGET = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.head(x)
        if {condition}:
            out = out * float("nan")
        if {raises}:
            raise ValueError("the input no longer fits")
        return out

def model():
    return Net()

def seeds():
    return torch.rand(4, 2, generator=torch.Generator().manual_seed(0))
'''


def reproducer(folder: Path) -> Path:
    x = torch.tensor([5.0, 5.0])
    failure = nnfuzz.Failure(inputs=(x,), seed=(x,), objective="nonfinite",
                             detail="NaN in the output of module '(model)'",
                             signature="nonfinite:(model)")
    return failure.save(folder / "nonfinite-test.safetensors")


def target(folder: Path, condition: str, raises: str = "False") -> Path:
    return write_target(folder, TARGET.replace("{condition}", condition).replace("{raises}", raises),
                        name=f"target_{abs(hash(condition + raises))}.py")


def test_a_failure_on_every_run_still_fails_and_one_on_some_runs_is_flaky(tmp_path: Path) -> None:
    path = reproducer(tmp_path)
    steady = invoke("replay", target(tmp_path, "bool(x.sum() > 9)"), path)
    assert steady.exit_code == 1 and ": still fails: " in steady.output, steady.output
    flaky = invoke("replay", target(tmp_path, "bool(x.sum() > 9) and self.calls % 2 == 0"), path)
    assert flaky.exit_code == 1, flaky.output
    assert ": flaky: failed 1 of 3 runs" in flaky.output, flaky.output


def test_an_input_the_model_now_raises_on_is_an_error_never_fixed(tmp_path: Path) -> None:
    path = reproducer(tmp_path)
    result = invoke("replay", target(tmp_path, "False", raises="bool(x.sum() > 9)"), path)
    assert result.exit_code == 2, result.output
    assert "ERROR:" in result.stderr and "ValueError" in result.stderr and "fixed" not in result.output


def test_repeat_sets_the_number_of_runs_and_the_reports_say_what_happened(tmp_path: Path) -> None:
    path = reproducer(tmp_path)
    flaky = target(tmp_path, "bool(x.sum() > 9) and self.calls % 2 == 0")
    report, junit = tmp_path / "replay.json", tmp_path / "replay.xml"
    result = invoke("replay", flaky, path, "--repeat", 4, "--json", report, "--junit", junit)
    assert result.exit_code == 1, result.output
    record = json.loads(report.read_text())
    assert record["counts"]["flaky"] == 1
    [entry] = record["reproducers"]
    assert (entry["verdict"], entry["runs"], entry["failed_runs"]) == ("flaky", 4, 2)
    assert entry["signature"] == "nonfinite:(model)"
    suite = ElementTree.parse(junit).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("errors")) == \
        ("testsuite", "1", "1", "0")
    [case] = suite
    assert case.get("name") == path.name and case.find("failure") is not None


def test_a_fixed_reproducer_is_a_passing_test_case(tmp_path: Path) -> None:
    path = reproducer(tmp_path)
    junit = tmp_path / "replay.xml"
    result = invoke("replay", target(tmp_path, "False"), path, "--junit", junit)
    assert result.exit_code == 0 and ": fixed: " in result.output, result.output
    [case] = ElementTree.parse(junit).getroot()
    assert list(case) == [], "no failure or error element"


#: NaN on a coin flip each forward (a model that samples): the same input fails only sometimes.
RANDOM_TARGET = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        out = self.head(x)
        coin = torch.rand(x.shape[0], 1) < 0.5
        return torch.where(coin & (x.sum(1, keepdim=True) > 9), out * float("nan"), out)

def model():
    torch.manual_seed(0)
    return Net()

def seeds():
    return torch.rand(4, 2, generator=torch.Generator().manual_seed(0))
'''


def test_a_model_with_randomness_in_forward_is_flaky_not_fixed(tmp_path: Path) -> None:
    path = reproducer(tmp_path)
    result = invoke("replay", write_target(tmp_path, RANDOM_TARGET, name="sampling.py"), path,
                    "--repeat", 20)
    assert result.exit_code == 1, result.output
    assert ": flaky: failed " in result.output and " of 20 runs" in result.output, result.output
