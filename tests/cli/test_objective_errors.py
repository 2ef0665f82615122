"""Objectives that cannot run are one clear error, not thousands of failures."""

from __future__ import annotations

from pathlib import Path

from tests.targets import HEALTHY, write_target

from .support import assert_one_error_line, invoke

RAISING_OBJECTIVE = HEALTHY + '''
def always_raises(inputs, output):
    raise RuntimeError("objective broke")

def objectives():
    return [always_raises]
'''

WRONG_SHAPE_OBJECTIVE = HEALTHY + '''
def returns_a_scalar(inputs, output):
    return (output > 100).any()

def objectives():
    return [returns_a_scalar]
'''

NO_LINEAR = '''
import torch
from torch import nn

def model():
    return nn.Sequential(nn.Tanh())

def seeds():
    return torch.rand(4, 3, generator=torch.Generator().manual_seed(0))
'''


def test_a_user_objective_that_raises_is_one_error_naming_it(tmp_path: Path) -> None:
    target = write_target(tmp_path, RAISING_OBJECTIVE)
    result = invoke("run", target, "--out", tmp_path / "out", "--runs", 500)
    assert_one_error_line(result, "objective always_raises raised RuntimeError",
                          traceback_expected=True)


def test_a_user_objective_of_the_wrong_shape_is_one_error_naming_it(tmp_path: Path) -> None:
    target = write_target(tmp_path, WRONG_SHAPE_OBJECTIVE)
    result = invoke("run", target, "--out", tmp_path / "out", "--runs", 500)
    assert_one_error_line(result, "objective returns_a_scalar returned a tensor of shape ()")


def test_the_loss_objective_without_a_loss_is_a_usage_error(healthy_target: Path,
                                                             tmp_path: Path) -> None:
    result = invoke("run", healthy_target, "--out", tmp_path / "out", "--objective", "loss")
    assert_one_error_line(result, "--objective loss", "define loss(output, target)")


def test_disagree_without_a_reference_is_a_usage_error(healthy_target: Path, tmp_path: Path) -> None:
    result = invoke("run", healthy_target, "--out", tmp_path / "out", "--objective", "disagree")
    assert_one_error_line(result, "--objective disagree", "--reference")


def test_an_int8_reference_of_a_model_without_linear_layers_is_a_clear_error(tmp_path: Path) -> None:
    target = write_target(tmp_path, NO_LINEAR)
    result = invoke("run", target, "--out", tmp_path / "out", "--reference", "int8")
    assert_one_error_line(result, "--reference int8", "no nn.Linear")
