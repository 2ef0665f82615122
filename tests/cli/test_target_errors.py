"""``nnfuzz run`` on broken target files: one ``ERROR:`` line, exit code 2 (README: *FAQ: error messages*, *Exit codes*)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from targets import write_target

from .support import NNFUZZ_DIR, assert_one_error_line, invoke

#: model() and seeds() that work, for targets broken elsewhere.
LINEAR_MODEL = '''
def model():
    torch.manual_seed(0)
    return nn.Linear(2, 2)
'''
TWO_SEEDS = '''
def seeds():
    return torch.tensor([[0.9, 0.1], [0.2, 0.3]])
'''
HEADER = "import torch\nfrom torch import nn\n"

RAISES_ON_IMPORT = '''
import torch

def _load_vocabulary():
    raise ValueError("vocabulary.txt is missing")

VOCABULARY = _load_vocabulary()

def model():
    return torch.nn.Linear(2, 2)
'''

#: The model is NaN on seed 2 only (log of a negative number).
NAN_ON_SEED_2 = HEADER + '''
class LogShift(nn.Module):
    def forward(self, x):
        return torch.log(x - 0.5)

def model():
    return LogShift()

def seeds():
    return torch.tensor([[0.9, 0.9], [0.8, 0.9], [0.2, 0.9], [0.7, 0.7]])
'''

#: The model raises on seed 1 only.
RAISES_ON_SEED_1 = HEADER + '''
class Picky(nn.Module):
    def forward(self, x):
        if (x < 0.5).any():
            raise ValueError("input below 0.5")
        return 2 * x

def model():
    return Picky()

def seeds():
    return torch.tensor([[0.9, 0.9], [0.2, 0.9], [0.7, 0.7]])
'''


def run_target(folder: Path, source: str, *options: object) -> Result:
    target = write_target(folder, source)
    return invoke("run", target, "--runs", 200, "--out", folder / "out", *options)


def test_a_missing_target_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model.py"
    line = assert_one_error_line(invoke("run", missing, "--out", tmp_path / "out"))
    assert "no_such_model.py" in line
    assert "no such" in line


def test_a_target_that_raises_on_import_shows_its_own_traceback_then_one_error_line(
        tmp_path: Path) -> None:
    result = run_target(tmp_path, RAISES_ON_IMPORT)
    line = assert_one_error_line(result, "model.py", "ValueError", "vocabulary.txt is missing",
                                 traceback_expected=True)
    assert "Traceback (most recent call last)" in result.stderr
    assert str(tmp_path / "model.py") in result.stderr  # the target's own frames ...
    assert 'raise ValueError("vocabulary.txt is missing")' in result.stderr
    assert NNFUZZ_DIR not in result.stderr  # ... and none of nnfuzz's
    assert result.stderr.index("Traceback") < result.stderr.index(line)


def test_a_target_without_model_is_one_line_naming_model_and_exit_2(tmp_path: Path) -> None:
    assert_one_error_line(run_target(tmp_path, HEADER + TWO_SEEDS), "model.py", "model()")


def test_a_target_without_seeds_is_one_line_naming_seeds_and_exit_2(tmp_path: Path) -> None:
    assert_one_error_line(run_target(tmp_path, HEADER + LINEAR_MODEL), "model.py", "seeds()")


@pytest.mark.parametrize("returned", ["[0.1, 0.2, 0.3]", "{0: torch.rand(4, 2)}",
                                      "torch.rand(4, 2).numpy()"],
                         ids=["list-of-floats", "dict-not-by-keyword", "numpy-array"])
def test_seeds_returning_a_non_tensor_is_one_line_naming_seeds_and_exit_2(
        tmp_path: Path, returned: str) -> None:
    source = HEADER + LINEAR_MODEL + f"\ndef seeds():\n    return {returned}\n"
    line = assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()")
    assert "Tensor" in line


def test_named_seeds_the_model_does_not_take_are_one_line_naming_its_parameters(
        tmp_path: Path) -> None:
    source = HEADER + LINEAR_MODEL + "\ndef seeds():\n    return {'x': torch.rand(4, 2)}\n"
    assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()", "'x'", "input")


def test_a_list_of_per_example_seeds_is_one_line_saying_to_stack_them(tmp_path: Path) -> None:
    # What iterating a Dataset gives: one tensor per example, no batch dimension.
    source = HEADER + LINEAR_MODEL + "\ndef seeds():\n    return [torch.rand(2) for _ in range(17)]\n"
    assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()",
                          "17 tensors of shape (2,)", "Linear.forward() takes (input)",
                          "torch.stack(examples), shape (17, 2)")


def test_seeds_for_more_inputs_than_forward_takes_are_one_line_naming_its_parameters(
        tmp_path: Path) -> None:
    source = HEADER + LINEAR_MODEL + "\ndef seeds():\n    return (torch.rand(4, 2), torch.rand(4, 3))\n"
    assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()", "2 input tensor(s)",
                          "Linear.forward() takes (input)")


def test_one_example_without_its_batch_dimension_blames_the_seeds_not_the_output(
        tmp_path: Path) -> None:
    source = HEADER + ("\ndef model():\n    torch.manual_seed(0)\n    return nn.Linear(4, 2)\n"
                       "\ndef seeds():\n    return torch.tensor([0.9, 0.1, 0.4, 0.3])\n")
    line = assert_one_error_line(run_target(tmp_path, source), "model.py", "the seeds, (4,)",
                                 "4 examples of shape ()", "x.unsqueeze(0), shape (1, 4)")
    assert "a tensor of shape (2,)" in line  # what the model returned for them


def test_seed_tensors_with_different_n_are_one_line_naming_both_n_and_exit_2(
        tmp_path: Path) -> None:
    source = HEADER + '''
class Add(nn.Module):
    def forward(self, a, b):
        return a + b

def model():
    return Add()

def seeds():
    return (torch.rand(4, 2), torch.rand(3, 2))
'''
    assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()", "3", "4")


def test_model_returning_a_non_module_is_one_line_naming_the_type_and_exit_2(
        tmp_path: Path) -> None:
    source = HEADER + "\ndef model():\n    return lambda x: 2 * x\n" + TWO_SEEDS
    assert_one_error_line(run_target(tmp_path, source), "model.py", "model()", "function",
                          "torch.nn.Module")


def test_model_raising_shows_the_targets_traceback_then_one_error_line(tmp_path: Path) -> None:
    source = HEADER + '''
def model():
    raise FileNotFoundError("checkpoint.pt not found")
''' + TWO_SEEDS
    result = run_target(tmp_path, source)
    assert_one_error_line(result, "model.py", "model()", "FileNotFoundError", "checkpoint.pt not found",
                          traceback_expected=True)
    assert 'raise FileNotFoundError("checkpoint.pt not found")' in result.stderr


def test_model_raising_a_multi_line_error_still_gives_one_error_line(tmp_path: Path) -> None:
    # A checkpoint that does not fit the network: torch's message spans several lines.
    source = HEADER + '''
def model():
    net = nn.Linear(2, 2)
    net.load_state_dict({"weight": torch.zeros(3, 3)})
    return net
''' + TWO_SEEDS
    result = run_target(tmp_path, source)
    assert_one_error_line(result, "model.py", "model()", "RuntimeError", traceback_expected=True)
    assert "size mismatch for weight" in result.stderr  # the target's traceback still says it all


def test_a_model_that_is_nan_on_a_seed_is_one_line_naming_the_seed_and_objective(
        tmp_path: Path) -> None:
    line = assert_one_error_line(run_target(tmp_path, NAN_ON_SEED_2), "seed 2", "nonfinite")
    assert "NaN" in line


def test_a_model_that_raises_on_a_seed_is_one_line_naming_the_seed_and_the_exception(
        tmp_path: Path) -> None:
    assert_one_error_line(run_target(tmp_path, RAISES_ON_SEED_1), "seed 1", "exception",
                          "ValueError", "input below 0.5", "model.py")


def test_a_seed_failing_an_objective_not_chosen_is_not_an_error(tmp_path: Path) -> None:
    # Only the objectives picked with --objective judge the seeds.
    result = run_target(tmp_path, NAN_ON_SEED_2, "--objective", "exception")
    assert result.exit_code == 0, result.output
    assert "ERROR" not in result.output


def test_seeds_outside_bounds_are_one_line_naming_seeds_and_bounds_and_exit_2(tmp_path: Path) -> None:
    source = HEADER + "BOUNDS = (0.0, 0.5)\n" + LINEAR_MODEL + TWO_SEEDS
    assert_one_error_line(run_target(tmp_path, source), "BOUNDS", "seeds", "(0.0, 0.5)")


@pytest.mark.parametrize("bounds", ["'zero to one'", "(1.0,)", "(1.0, 0.0)", "[(0.0, 1.0), (0.0, 1.0)]"],
                         ids=["a-string", "one-number", "low-above-high", "two-pairs-for-one-input"])
def test_malformed_bounds_are_one_line_naming_bounds_and_exit_2(tmp_path: Path, bounds: str) -> None:
    source = HEADER + f"BOUNDS = {bounds}\n" + LINEAR_MODEL + TWO_SEEDS
    assert_one_error_line(run_target(tmp_path, source), "BOUNDS")


def test_a_bounds_error_names_the_target_file(tmp_path: Path) -> None:
    # README, *FAQ: error messages*: one line naming the file, the name and what to fix.
    malformed = HEADER + "BOUNDS = 'zero to one'\n" + LINEAR_MODEL + TWO_SEEDS
    outside = HEADER + "BOUNDS = (0.0, 0.5)\n" + LINEAR_MODEL + TWO_SEEDS
    for name, source in (("malformed.py", malformed), ("outside.py", outside)):
        target = write_target(tmp_path, source, name)
        assert_one_error_line(invoke("run", target, "--runs", 200, "--out", tmp_path / "out"), name, "BOUNDS")


def test_seeds_holding_nan_are_one_line_that_blames_the_seeds_not_bounds(tmp_path: Path) -> None:
    source = HEADER + LINEAR_MODEL + "\ndef seeds():\n    return torch.tensor([[float('nan'), 0.1], [0.2, 0.3]])\n"
    line = assert_one_error_line(run_target(tmp_path, source), "model.py", "seeds()")
    assert "nan" in line.lower()
