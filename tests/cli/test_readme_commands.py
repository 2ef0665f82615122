"""The README's commands, read from the README itself (issue #24, item 10): every
``nnfuzz run`` it shows has an output folder of its own, so that trying them one after
another works, and the set-up command's seed corpus is where it says."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def run_commands() -> list[list[str]]:
    """Every `nnfuzz run ...` in the README, inline or in a code block, as arguments."""
    found = re.findall(r"nnfuzz run [^`\n]*", README)
    return [shlex.split(command.split("&&")[0]) for command in found]


def out_of(arguments: list[str]) -> str | None:
    return arguments[arguments.index("--out") + 1] if "--out" in arguments else None


def test_every_run_command_the_readme_shows_for_a_target_has_its_own_out() -> None:
    commands = [a for a in run_commands() if len(a) > 2 and a[2].endswith(".py")]
    assert len(commands) >= 5
    # The Python API's and --help's mentions aside, each runnable command names its --out...
    runnable = [a for a in commands if "--max-time" in a or "--stop-on-failure" in a]
    missing = [" ".join(a) for a in runnable if out_of(a) is None]
    assert not missing, f"without --out (they would share nnfuzz-out): {missing}"
    # ... and no two different targets share one.
    targets_by_out: dict[str, set[str]] = {}
    for arguments in runnable:
        targets_by_out.setdefault(out_of(arguments) or "", set()).add(arguments[2])
    shared = {out: targets for out, targets in targets_by_out.items() if len(targets) > 1}
    assert not shared, shared


def test_the_set_up_command_fuzzes_a_zoo_target_from_a_seed_corpus_in_corpus() -> None:
    [setup] = [line for line in README.splitlines() if line.startswith("python3 -m venv")]
    arguments = shlex.split(setup.split("&&")[-1])
    corpus = Path(arguments[arguments.index("--corpus") + 1])
    assert corpus.parts[0] == "corpus" and (ROOT / corpus).is_dir()
    assert sorted(path.suffix for path in (ROOT / corpus).iterdir()) == [".npy"] * 32
    assert Counter(p.parent.name for p in (ROOT / "corpus").glob("*/*.npy"))  # every data set
