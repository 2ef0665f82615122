"""The README's target files run as written: each ```python block that starts with
``# NAME.py`` is copied into a folder and fuzzed with ``nnfuzz run``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from .support import invoke

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_targets() -> dict[str, str]:
    blocks = re.findall(r"```python\n(# (\w+\.py)\n.*?)```", README.read_text(), flags=re.S)
    return {name: source for source, name in blocks}


def test_the_readme_has_the_target_files_it_promises() -> None:
    assert {"model.py", "hf_model.py", "image_model.py"} <= set(readme_targets())


def run_readme_target(tmp_path: Path, name: str, *options: object):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(readme_targets()[name])
    return invoke("run", path, "--out", tmp_path / "out", *options)


def test_the_readme_model_py_fuzzes_cleanly(tmp_path: Path) -> None:
    result = run_readme_target(tmp_path, "model.py", "--runs", 2000)
    assert result.exit_code == 0, result.output
    assert "INFO: input 0: (4,) float32, continuous in [0, 1] (BOUNDS)" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="transformers is not installed: pip install -e '.[models]'")
def test_the_readme_hugging_face_target_runs_with_no_wrapper_and_says_its_domain(
        tmp_path: Path) -> None:
    result = run_readme_target(tmp_path, "hf_model.py", "--runs", 2000)
    assert result.exit_code == 0, result.output
    for line in ("INFO: input 'input_ids': (24,) int64, tokens 0..999 (model.config.vocab_size); "
                 "pad 0 (model.config.pad_token_id), at the end, as every seed",
                 "INFO: input 'attention_mask': (24,) int64, mask on real tokens, recomputed after "
                 "every mutation (inferred: it equals 'input_ids' != 0 on every seed)",
                 "INFO: input 'token_type_ids': (24,) int64, tokens 0..1 (model.config.type_vocab_size)"):
        assert line in result.stderr.splitlines(), result.stderr
    assert "WARNING" not in result.stderr


def test_the_readme_uint8_image_target_finds_the_flat_image(tmp_path: Path) -> None:
    result = run_readme_target(tmp_path, "image_model.py", "--runs", 2000, "--stop-on-failure")
    assert result.exit_code == 1, result.output
    assert ("INFO: input 0: (3, 32, 32) uint8, image levels 0..255, rounded (uint8's range)"
            in result.stderr.splitlines())
    assert "==FAILURE== nonfinite: NaN" in result.stderr
