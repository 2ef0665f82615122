"""The pytest plugin (issue 16, part 1): nnfuzz_check fails a test at the first failure with
its description and replay line, passes a clean model, and honours --nnfuzz-budget."""

from __future__ import annotations

import pytest

from tests.targets import DEAD_RELU, HEALTHY

#: Each test starts pytest in a process of its own (pytester), as a user runs it.
pytestmark = pytest.mark.slow

#: A test module that fuzzes the target file beside it.
CHECKS_THE_FILE = '''
def test_the_model_is_robust(nnfuzz_check):
    result = nnfuzz_check("model.py", runs=3000)
    print("EXECS", result.execs, "STOP", result.stop_reason.name)
'''

#: A test module with a model in memory that makes NaN above 0.9.
CHECKS_A_MODEL_IN_MEMORY = '''
import torch
from torch import nn

class NanAbove(nn.Module):
    def forward(self, x):
        return torch.where(x > 0.9, torch.nan, x).sum(1, keepdim=True)

def test_the_model_is_finite(nnfuzz_check):
    nnfuzz_check(NanAbove(), 0.5 * torch.rand(16, 4, generator=torch.Generator().manual_seed(0)),
                 bounds=(0.0, 1.0), objectives=["nonfinite"])
'''


def test_a_planted_bug_fails_the_test_with_its_description_and_replay_line(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(model=DEAD_RELU, test_model=CHECKS_THE_FILE)
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "60")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nnfuzz found a failure: nonfinite: NaN*",
                                 "*replay: nnfuzz replay *model.py *crashes/nonfinite-*.safetensors"])
    assert "EXECS" not in result.stdout.str(), "it stopped at the failure, before the test's end"


def test_a_clean_model_passes_and_runs_for_its_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(model=HEALTHY, test_model=CHECKS_THE_FILE)
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "600", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*EXECS 3000 STOP RUNS*"])


def test_the_budget_option_bounds_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(model=HEALTHY, test_model=CHECKS_THE_FILE.replace("runs=3000", "runs=10**9"))
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "2", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*STOP MAX_TIME*"])


def test_a_model_in_memory_fails_with_where_its_reproducer_is(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_in_memory=CHECKS_A_MODEL_IN_MEMORY)
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "60")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nnfuzz found a failure: nonfinite:*",
                                 "*replay: nnfuzz.load_failure(*nonfinite-*.safetensors*"])


def test_a_budget_of_zero_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(model=HEALTHY, test_model=CHECKS_THE_FILE)
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "0")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: --nnfuzz-budget 0: give a number of seconds above 0."])


def test_the_readme_fixture_example_runs_as_written(pytester: pytest.Pytester) -> None:
    from tests.cli.test_readme_examples import readme_targets

    pytester.makepyfile(model=readme_targets()["model.py"], test_fuzz=readme_targets()["test_fuzz.py"])
    result = pytester.runpytest_subprocess("--nnfuzz-budget", "3")
    result.assert_outcomes(passed=1)
