"""The pytest plugin (issue 16): nnfuzz_check fails a test at the first failure with its
description and replay line, passes a clean model and honours --nnfuzz-budget; --nnfuzz-replay
makes reproducers test items that fail while they still fail and pass once fixed."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.targets import DEAD_RELU, HEALTHY, write_target

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


#: DEAD_RELU with an epsilon in the std division: its NaN is gone.
FIXED_DEAD_RELU = DEAD_RELU.replace("/ h.std(1, keepdim=True)", "/ (h.std(1, keepdim=True) + 1e-6)")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``nnfuzz run model.py --out out --runs 20000 --stop-on-failure`` (DEAD_RELU), run once
    for the module in a folder of its own, that folder its working directory. It runs in this
    process (click's runner), outside any test's pytester: pytester unloads the modules a test
    imported, and torch's cannot be imported twice. Each test copies the folder."""
    from tests.cli.support import invoke

    folder = tmp_path_factory.mktemp("fuzzed")
    write_target(folder, DEAD_RELU)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run = invoke("run", "model.py", "--out", "out", "--runs", "20000", "--stop-on-failure")
    assert run.exit_code == 1, run.output
    return folder


def fuzz_until_a_failure(pytester: pytest.Pytester, fuzzed: Path) -> Path:
    """The module's ``nnfuzz run model.py --out out`` (DEAD_RELU) copied into the pytester
    folder: out/ holds one reproducer and a run.json naming model.py as the run was given it
    (a relative path)."""
    shutil.copy(fuzzed / "model.py", pytester.path / "model.py")
    shutil.copytree(fuzzed / "out", pytester.path / "out")
    crashes = sorted((pytester.path / "out" / "crashes").glob("nonfinite-*.safetensors"))
    assert len(crashes) == 1
    return crashes[0]


def test_replay_items_fail_while_still_failing_pass_once_fixed_and_error_when_unreadable(
        pytester: pytest.Pytester, fuzzed: Path) -> None:
    crash = fuzz_until_a_failure(pytester, fuzzed)

    still = pytester.runpytest_subprocess("--nnfuzz-replay", "out", "-rA")
    still.assert_outcomes(failed=1)
    still.stdout.fnmatch_lines(["*nnfuzz replay: still fails: nonfinite: NaN*",
                                f"*replay: nnfuzz replay model.py out/crashes/{crash.name}",
                                "*= nnfuzz replay =*", "1 still fails",
                                f"FAILED out/crashes::{crash.name}*"])

    (pytester.path / "model.py").write_text(textwrap.dedent(FIXED_DEAD_RELU))
    (crash.parent / "nonfinite-corrupt.safetensors").write_bytes(b"not a reproducer")
    fixed = pytester.runpytest_subprocess("--nnfuzz-replay", "out/crashes")
    fixed.assert_outcomes(passed=1, errors=1)
    fixed.stdout.fnmatch_lines(["nnfuzz replay: out/crashes/nonfinite-corrupt.safetensors: error: not a valid *",
                                "*= nnfuzz replay =*", "1 fixed, 1 error",
                                f"fixed: out/crashes/{crash.name} (delete it, or keep it as a "
                                "regression test)"])


def test_the_ini_option_keeps_reproducers_as_regression_tests_of_a_named_target(
        pytester: pytest.Pytester, fuzzed: Path) -> None:
    crash = fuzz_until_a_failure(pytester, fuzzed)
    regressions = pytester.mkdir("regressions")
    crash.rename(regressions / crash.name)
    pytester.makepyfile(fixed=FIXED_DEAD_RELU, test_plain="def test_plain():\n    pass\n")
    pytester.makeini("[pytest]\nnnfuzz_replay =\n    regressions fixed.py\n")
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"regressions::{crash.name} PASSED*"], consecutive=False)
    only = pytester.runpytest_subprocess("-k", "plain")
    only.assert_outcomes(passed=1, deselected=1)


def test_a_replay_folder_whose_target_cannot_be_found_stops_the_session_with_one_line(
        pytester: pytest.Pytester) -> None:
    pytester.mkdir("crashes")
    result = pytester.runpytest_subprocess("--nnfuzz-replay", "crashes")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: --nnfuzz-replay crashes: no run.json names its target: "
                                 "give --nnfuzz-target TARGET.py."])
    missing = pytester.runpytest_subprocess("--nnfuzz-replay", "nowhere")
    missing.stderr.fnmatch_lines(["ERROR: --nnfuzz-replay nowhere: no such folder:*"])


def test_a_target_that_fails_to_import_is_an_error_of_each_replay_item(
        pytester: pytest.Pytester) -> None:
    import torch

    import nnfuzz

    crashes = pytester.mkdir("crashes")
    for name in ("nonfinite-a", "nonfinite-b"):
        x = torch.full((16,), 0.1)
        nnfuzz.Failure(inputs=(x,), seed=(x,), objective="nonfinite", detail="NaN",
                       signature="nonfinite:head").save(crashes / f"{name}.safetensors")
    pytester.makepyfile(broken="import torch\nraise RuntimeError('no weights here')\n")
    result = pytester.runpytest_subprocess("--nnfuzz-replay", "crashes", "--nnfuzz-target",
                                           "broken.py")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["nnfuzz replay: cannot replay against broken.py: importing the "
                                 "target raised RuntimeError: no weights here"])
    assert "During handling" not in result.stdout.str()
