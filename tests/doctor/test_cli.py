"""``nnfuzz doctor`` on the command line: the table, exit codes 0/1/2, the record of what
ran (doctor.json, --json), the plots (--png, --html), and run.json's seeds hash."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nnfuzz.cli import main
from nnfuzz.doctor import CHECKS, DoctorConfig
from nnfuzz.storage import content_hash
from nnfuzz.target import load_target
from tests.cli.support import assert_one_error_line, invoke
from tests.targets import HEALTHY, write_target

from .zoo import EXAMPLE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Every parameter frozen: the overfit check fails at once, without training.
ALL_FROZEN = HEALTHY + '''
def targets():
    return torch.arange(16) % 2

def loss(output, target):
    return torch.nn.functional.cross_entropy(output, target, reduction="none")

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).requires_grad_(False)
'''


def rows(stdout: str) -> list[list[str]]:
    """[status, check] of each row of the table."""
    return [line.split()[:2] for line in stdout.splitlines()
            if line.split()[:1] in (["PASS"], ["WARN"], ["FAIL"], ["SKIP"])]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """The bundled example, with every output asked for."""
    folder = tmp_path_factory.mktemp("doctor")
    result = invoke("doctor", EXAMPLE, "--out", folder / "out", "--json", folder / "d.json",
                    "--png", folder / "plots", "--html", folder / "page.html")
    return result, folder


def test_the_bundled_example_passes_every_check_and_exits_0(example_run: tuple) -> None:
    result, _ = example_run
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [["PASS", check] for check in CHECKS]
    assert "7 checks: 7 pass" in result.stdout
    assert "\x1b[" not in result.stdout, "no colour codes when stdout is not a terminal"


def test_the_status_is_coloured_on_a_terminal(tmp_path: Path) -> None:
    target = write_target(tmp_path, ALL_FROZEN)
    result = CliRunner().invoke(main, ["doctor", str(target), "--out", str(tmp_path / "out"),
                                       "--check", "overfit"], color=True)
    assert result.exit_code == 1
    assert click.style("FAIL", fg="red", bold=True) in result.stdout


def test_doctor_json_records_what_ran_and_every_check(example_run: tuple) -> None:
    _, folder = example_run
    record = json.loads((folder / "out" / "doctor.json").read_text())
    target = load_target(EXAMPLE)
    assert record["command"] == "doctor" and record["target_sha256"] == target.sha256
    assert record["seeds_sha256"] == content_hash(target.seeds)
    assert {"nnfuzz", "torch", "numpy", "python"} <= set(record)
    assert record["options"] == asdict(DoctorConfig()), "the CLI's defaults are the library's"
    assert [c["check"] for c in record["checks"]] == list(CHECKS)
    assert all({"status", "value", "threshold", "hint", "measured"} <= set(c) for c in record["checks"])
    assert record["runs"][-1]["checks"] == {check: "pass" for check in CHECKS}
    assert json.loads((folder / "d.json").read_text())["checks"] == record["checks"]


def test_png_and_html_hold_the_three_plots(example_run: tuple) -> None:
    result, folder = example_run
    plots = sorted((folder / "plots").iterdir())
    assert [p.name for p in plots] == ["activations.png", "gradient-norms.png", "overfit.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in plots)
    page = (folder / "page.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and page.count("<tr>") == 1 + len(CHECKS)
    assert f"plot: {folder / 'plots' / 'overfit.png'}" in result.stdout


def test_a_failing_check_exits_1_and_each_run_is_added_to_the_record(tmp_path: Path) -> None:
    target = write_target(tmp_path, ALL_FROZEN)
    for _ in range(2):
        result = invoke("doctor", target, "--out", tmp_path / "out", "--check", "overfit",
                        "--check", "gradient-flow")
        assert result.exit_code == 1, result.output
    assert rows(result.stdout) == [["FAIL", "overfit"], ["PASS", "gradient-flow"]]
    assert "requires_grad=False" in result.stdout
    runs = json.loads((tmp_path / "out" / "doctor.json").read_text())["runs"]
    assert [run["checks"] for run in runs] == [{"overfit": "fail", "gradient-flow": "pass"}] * 2


def test_a_broken_target_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    no_model = write_target(tmp_path, "import torch\n", "empty.py")
    assert_one_error_line(invoke("doctor", no_model), "no model() defined")
    raising = write_target(tmp_path, ALL_FROZEN + '''
def loss(output, target):
    raise ValueError("shapes do not match")
''', "raising.py")
    assert_one_error_line(invoke("doctor", raising, "--out", tmp_path / "out", "--check",
                                 "loss-sanity"), "loss(output, target) raised ValueError",
                          traceback_expected=True)


@pytest.mark.parametrize("option, fragment", [
    (("--check", "vibes"), "--check 'vibes' is unknown"),
    (("--lr", "0"), "--lr 0.0 must be a positive"),
])
def test_bad_options_are_one_error_line(tmp_path: Path, option: tuple[str, str], fragment: str) -> None:
    target = write_target(tmp_path, ALL_FROZEN)
    assert_one_error_line(invoke("doctor", target, "--out", tmp_path / "out", *option), fragment)


def test_plots_without_matplotlib_are_one_error_before_any_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    target = write_target(tmp_path, ALL_FROZEN)
    result = invoke("doctor", target, "--out", tmp_path / "out", "--png", tmp_path / "plots")
    assert_one_error_line(result, "matplotlib", "nnfuzz[report]")
    assert not (tmp_path / "out").exists()


def test_a_fresh_model_from_model_pretrained_false(tmp_path: Path) -> None:
    """model(pretrained=False) gives the initial-loss check its fresh model; here the
    "pretrained" weights are confidently wrong, the fresh ones are not."""
    target = write_target(tmp_path, ALL_FROZEN + '''
def model(pretrained=True):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    if pretrained:
        with torch.no_grad():
            net[2].weight.mul_(1000.0)
    return net
''')
    result = invoke("doctor", target, "--out", tmp_path / "out", "--check", "initial-loss")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [["PASS", "initial-loss"]]


def test_run_json_records_the_seeds_hash(tmp_path: Path) -> None:
    target = write_target(tmp_path, HEALTHY)
    assert invoke("run", target, "--out", tmp_path / "out", "--runs", 200).exit_code == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["seeds_sha256"] == content_hash(load_target(target).seeds)


#: Named inputs, a dict output and a loss that indexes it: the doctor calls the model as
#: nnfuzz run does, model(**inputs), and gives the loss what the model returned.
NAMED_DICT_OUTPUT = '''
import torch
from torch import nn

class Pool(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(40, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return {"logits": self.head(torch.relu(pooled))}

def model():
    return Pool()

def seeds():
    ids = torch.randint(1, 40, (16, 10), generator=torch.Generator().manual_seed(0))
    ids[:, 7:] = 0
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}

def targets():
    return torch.arange(16) % 3

def loss(output, target):
    return nn.functional.cross_entropy(output["logits"], target, reduction="none")
'''


def test_the_doctor_runs_every_check_on_named_inputs_and_a_dict_output(tmp_path: Path) -> None:
    result = invoke("doctor", write_target(tmp_path, NAMED_DICT_OUTPUT), "--out", tmp_path / "d",
                    "--steps", 50)
    assert result.exit_code in (0, 1), result.output
    checked = {row[1] for row in rows(result.stdout) if row and row[0] in ("PASS", "WARN", "FAIL")}
    assert {"overfit", "gradcheck", "gradient-flow", "update-size", "loss-sanity"} <= checked, \
        result.stdout
