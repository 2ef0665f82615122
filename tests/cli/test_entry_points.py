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
