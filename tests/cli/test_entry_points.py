"""``python -m nnfuzz --help`` and ``nnfuzz --version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import nnfuzz

from .support import invoke


def test_python_dash_m_nnfuzz_help_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "nnfuzz", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: nnfuzz "), done.stdout
    for command in ("run", "replay"):
        assert f"  {command} " in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


def test_run_help_lists_the_documented_options() -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--out", "--corpus", "--objective", "--max-time", "--runs", "--batch-size",
                   "--seed", "--device", "--radius", "--norm", "--layer", "--threshold"):
        assert option in result.stdout, option


def test_nnfuzz_version_prints_the_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"nnfuzz, version {nnfuzz.__version__}"
    assert nnfuzz.__version__ == version("nnfuzz")


#: Runs the command line's --help in a fresh interpreter, then says whether torch was imported.
HELP_WITHOUT_TORCH = """
import sys
from nnfuzz.cli import main
for args in (["--help"], ["run", "--help"], ["corpus", "--help"]):
    try:
        main(args, prog_name="nnfuzz")
    except SystemExit:
        pass
print("torch imported:", "torch" in sys.modules)
"""


def test_help_answers_without_importing_torch() -> None:
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("torch imported: False"), done.stdout


def test_the_command_summaries_are_whole_and_run_help_ends_with_examples_and_exit_codes() -> None:
    for group in ([], ["corpus"]):
        shown = invoke(*group, "--help")
        commands = shown.stdout.split("Commands:")[1]
        assert shown.exit_code == 0 and "..." not in commands, shown.stdout
    run = invoke("run", "--help").stdout
    examples, codes = run.index("Examples:"), run.index("Exit codes:")
    assert examples < codes
    assert "nnfuzz run model.py --max-time 60" in run[examples:codes]
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n    {code}" in run[codes:], run[codes:]
