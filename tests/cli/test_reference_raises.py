"""A reference that raises does not end the run (issue #24, items 2 and 3).

Where the model raises, that is the ``exception`` objective's finding, saved as without
``--reference``; where only the reference raises, it is ``disagree:raised:<type>``. The start
of the run says which reference was built and how long it took.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.targets import write_target

from .support import assert_one_error_line, invoke

#: A table indexed by a quantized feature: IndexError once the feature's mean passes 0.9,
#: in the model and in every copy of it alike.
LOOKUP = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

class Lookup(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)
        self.table = torch.arange(10.0)

    def forward(self, x):
        index = (x.mean(1) * 10 / 0.9).long()
        return self.linear(x) + self.table[index].unsqueeze(1)

def model():
    return Lookup()

def seeds():
    return 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''

#: A reference() that raises where the model does not: on inputs whose first value passes 0.8.
PICKY_REFERENCE = '''
import torch
from torch import nn

BOUNDS = (0.0, 1.0)

def model():
    torch.manual_seed(0)
    return nn.Linear(4, 3)

class Picky(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if bool((x[:, 0] > 0.8).any()):
            raise ValueError("the reference cannot take a first value past 0.8")
        return self.inner(x)

def reference():
    return Picky(model())

def seeds():
    return 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
'''


@pytest.mark.parametrize("kind, described", [
    ("int8", "a copy with its Linear and recurrent layers dynamically quantized to int8"),
    ("fp16", "a copy in float16 (weights and float inputs cast)"),
    ("bf16", "a copy in bfloat16 (weights and float inputs cast)"),
])
def test_the_models_own_exception_is_found_and_saved_with_a_reference(
        tmp_path: Path, kind: str, described: str) -> None:
    target = write_target(tmp_path, LOOKUP)
    out = tmp_path / "out"
    result = invoke("run", target, "--out", out, "--reference", kind, "--runs", "2000",
                    "--no-minimize")
    assert result.exit_code == 1, result.output
    assert "ERROR" not in result.stderr
    assert f"INFO: disagree compares the model with {described}, built in " in result.stderr
    saved = [path.name for path in (out / "crashes").iterdir()]
    assert any(name.startswith("exception-") for name in saved), saved


def test_a_reference_that_raises_where_the_model_does_not_is_a_disagreement(
        tmp_path: Path) -> None:
    target = write_target(tmp_path, PICKY_REFERENCE)
    out = tmp_path / "out"
    result = invoke("run", target, "--out", out, "--runs", "2000", "--stop-on-failure",
                    "--no-minimize")
    assert result.exit_code == 1, result.output
    assert "INFO: disagree compares the model with the target's reference(), built in " in result.stderr
    assert ("disagree: the target's reference() raised ValueError: the reference cannot take a "
            "first value past 0.8 on an input the model accepts") in result.stderr
    [saved] = [path.name for path in (out / "crashes").iterdir()]
    assert saved.startswith("disagree-")
    replayed = invoke("replay", target, out / "crashes" / saved)
    assert replayed.exit_code == 1 and "still fails" in replayed.output, replayed.output


def test_a_reference_that_raises_on_every_seed_is_one_error_line_saying_so(
        tmp_path: Path) -> None:
    """Every seed past the reference's limit: the error says the reference cannot run at
    all (found before any search), not to loosen tolerances that have nothing to do with it."""
    target = write_target(tmp_path, PICKY_REFERENCE.replace("0.8", "-1.0"))
    result = invoke("run", target, "--out", tmp_path / "out", "--runs", "200")
    line = assert_one_error_line(result, "every seed already fails disagree",
                                 "the reference cannot run on the seeds at all")
    assert "--atol" not in line, line
