"""Results files, plots, and RESULTS.md rebuilt from them.

    python -m benchmarks.report

Every benchmark writes its own section to benchmarks/results/<name>[-quick].md
(a heading, the command and machine that produced it, what was measured, the
tables). RESULTS.md is those sections in a fixed order under a machine header,
so it never disagrees with the files it is made of: a full run's file when
there is one, else the --quick run's, marked as such.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable

from benchmarks import machine

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
RESULTS_MD = BENCHMARKS / "RESULTS.md"

#: Sections of RESULTS.md, in order: the stem of each results file.
#: schedule-finding and schedule-bar: issue #29's one-off comparisons of the operator schedule
#: (nnfuzz.schedule) against the uniform draw, kept as written (subsections of the one before);
#: batch-sizes: issue #29's comparison of batch sizes (python -m benchmarks.batch_sizes).
SECTIONS = ("finding", "schedule-finding", "chains", "chains-bisect", "batch-sizes",
            "real-architectures",
            "tensorfuzz-nans", "tensorfuzz-quantization", "tensorfuzz-bar", "schedule-bar",
            "minimization", "throughput", "index", "index-params", "memory",
            "scaling", "workers-finding", "runtimes", "precision", "training")

FINDING_TITLE = "## Finding the zoo's bugs: executions to the first failure"
FINDING_DESCRIPTION = ("nnfuzz against the searchers given the same budget: random mutation "
                       "(nnfuzz's operators always applied to a seed, no coverage feedback), "
                       "both again without the edge operator (whole inputs at a bound, constant "
                       "or all padding, which reach many of the zoo's bugs in one step: without "
                       "it, what the coverage feedback adds to the other operators shows), "
                       "uniform samples inside `BOUNDS`, and uniform noise of ±0.25 of the "
                       "bounds' width around the seeds.")


def finding_heading(text: str) -> str:
    """What goes above finding.md as benchmarks/finding.py writes it (it has no heading):
    the title, the command that wrote it (read back from its first line) and the searchers."""
    command = "python -m benchmarks.finding"
    found = re.match(r"Budget ([\d,]+) executions per search, run seeds 0\.\.(\d+)", text)
    if found:
        command += f" --budget {found[1].replace(',', '')} --seeds {int(found[2]) + 1}"
    return (f"{FINDING_TITLE}\n\n`{command}` ([results/finding.md](results/finding.md)). "
            f"{FINDING_DESCRIPTION}\n")

PREAMBLE = """\
Seconds depend on the machine and on what else ran on it (each section gives the load average \
when it started); executions do not.
Each section names the command that regenerates it; the raw files and plots are in \
[results/](results/). `python -m benchmarks [--quick] [--only finding,chains,real-architectures,minimization,throughput,index,index-params,memory,scaling,workers-finding,runtimes,precision,training]` \
reruns the harness's sections and rebuilds this file; `python -m benchmarks.report` only \
rebuilds it.
Setup for all of them: `pip install -e '.[benchmarks]'` (scikit-learn, scipy, matplotlib and pyinstrument).
Where the time goes: `python -m benchmarks.profile loss|small-cnn|tiny-mlp` writes pyinstrument's call tree of one run: [loss path](results/profile-loss.txt) (TensorFuzz's MLP, one seed image), [small CNN](results/profile-small-cnn.txt), [tiny MLP](results/profile-tiny-mlp.txt).
"""


def result_path(name: str, quick: bool, suffix: str = ".md") -> Path:
    """results/<name>.md, or <name>-quick.md for a --quick run (so it never hides a full one)."""
    return RESULTS / f"{name}{'-quick' if quick else ''}{suffix}"


def write(name: str, text: str, quick: bool) -> Path:
    """The section's file, ending with the machine's load at its start and end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = result_path(name, quick)
    path.write_text(text.rstrip("\n") + "\n\n" + machine.load_line(text) + "\n")
    print(f"wrote {path.relative_to(BENCHMARKS.parent)}", flush=True)
    return path


def pyplot():  # type: ignore[no-untyped-def]
    """matplotlib.pyplot with a file-only backend, or None when matplotlib is missing
    (the numbers still get written; only the plots are skipped)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the plot "
              "(pip install -e '.[benchmarks]')", flush=True)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, name: str, quick: bool) -> str:  # type: ignore[no-untyped-def]
    """Save a figure next to its section; returns the Markdown that shows it."""
    path = result_path(name, quick, ".png")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    figure.clear()
    import matplotlib.pyplot as plt

    plt.close(figure)
    print(f"wrote {path.relative_to(BENCHMARKS.parent)}", flush=True)
    return f"![{name}]({path.name})"


def command_line(module: str, quick: bool, wall_s: float, started: str) -> str:
    """The line under a section's heading: what regenerates it, how long it took, on what."""
    flag = " --quick" if quick else ""
    return (f"`python -m benchmarks.{module}{flag}` (also run by `python -m benchmarks{flag}`) "
            f"— {wall_s:.0f} s wall-clock; {started}.")


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section(name: str) -> str | None:
    """A section's text for RESULTS.md: the full run's file, else the quick one's, else None."""
    full, quick = result_path(name, False), result_path(name, True)
    path = full if full.is_file() else quick if quick.is_file() else None
    if path is None:
        return None
    text = path.read_text().strip("\n")
    if not text.startswith("#"):
        text = finding_heading(text) + "\n" + text if name == "finding" else f"## {name}\n\n{text}"
    if path == quick:
        heading, _, rest = text.partition("\n")
        note = f"*From a `--quick` run: there is no full run's {full.name} yet.*"
        text = f"{heading}\n\n{note}\n{rest}"
    # Links to plots are relative to results/; RESULTS.md sits one folder up.
    return re.sub(r"\]\(([^)/:]+\.png)\)", r"](results/\1)", text)


def regenerate() -> Path:
    parts = ["# nnfuzz benchmark results", machine.header(), PREAMBLE.strip()]
    parts += [text for text in map(section, SECTIONS) if text is not None]
    RESULTS_MD.write_text("\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS_MD.relative_to(BENCHMARKS.parent)}", flush=True)
    return RESULTS_MD


def main() -> None:
    argparse.ArgumentParser(description="Rebuild benchmarks/RESULTS.md from "
                                        "benchmarks/results/*.md (runs nothing).").parse_args()
    regenerate()


if __name__ == "__main__":
    main()


def seconds_main(doc: str, run: Callable[[bool, float | None], object], default: float) -> None:
    """The command line of a section whose budget is seconds per configuration
    (``--quick``: 10 s; ``--seconds N``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s per configuration")
    parser.add_argument("--seconds", type=float,
                        help=f"seconds per configuration (default {default:g})")
    args = parser.parse_args()
    run(args.quick, args.seconds)
