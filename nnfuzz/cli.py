"""The ``nnfuzz`` command line: a thin shell over the library.

Only this module prints and exits. Errors from the library become one line,
``ERROR: ...``, and the exit code of the README's *Exit codes*; the target's own traceback
is shown above the line when the target itself raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from nnfuzz.errors import UsageError
from nnfuzz.exits import Commands, handles_errors, run_exit_code
from nnfuzz.training.command import train
from nnfuzz.tracking.command import Tracker, tracked
# Leaves only: torch is imported by the commands that run, so that --help answers at once.
from nnfuzz.config import (COMPILE_MODES, DEFAULT_ATOL, DEFAULT_RTOL, NORMS, REFERENCE_KINDS,
                           RUNTIME_ATOL, RUNTIME_RTOL, batch_size_value)

#: What ``nnfuzz run --help`` ends with (\b keeps click from rewrapping the lines).
RUN_EPILOG = """\b
Examples:
  nnfuzz run model.py --max-time 60
  nnfuzz run model.py --out nightly --max-time 3600 --junit junit.xml
  nnfuzz run model.py --reference int8 --stop-on-failure

\b
Exit codes:
  0    finished, no new failure
  1    at least one new failure saved in OUT/crashes/
  2    usage error, broken target, unreadable input or output folder
  130  interrupted (Ctrl-C or SIGTERM) after saving state; run again to resume
"""


def _json_option(what: str) -> Callable[[Any], Any]:
    """``--json FILE``, as every command that reports has it."""
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"Also write {what} to this file.")


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nnfuzz")
def main() -> None:
    """nnfuzz: coverage-guided fuzzing for PyTorch models."""


@main.command(short_help="Fuzz a target's model; exit 1 on a new failure.", epilog=RUN_EPILOG)
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("nnfuzz-out"),
              show_default=True, help="Output folder; running again with it resumes.")
@click.option("--corpus", type=click.Path(path_type=Path), help="Folder of starting inputs.")
@click.option("--objective", "objectives", multiple=True,
              help="Objective to check (repeatable): nonfinite, exception, loss, disagree, "
                   "or a name from the target's objectives(). Default: all available.")
@click.option("--reference", type=click.Choice(REFERENCE_KINDS),
              help="What disagree compares the model against (when no reference()): a "
                   "reduced-precision copy, the model under torch.autocast or another "
                   "execution path, or a runtime (torch.compile, torch.export, ONNX Runtime).")
@click.option("--compile-mode", type=click.Choice(COMPILE_MODES),
              help="torch.compile's mode for --reference compile [default: its default].")
@click.option("--atol", type=float,
              help=f"disagree: absolute tolerance for outputs that are not class scores "
                   f"[default: {DEFAULT_ATOL:g}; 0.02 and 0.005 for autocast-bf16 and -fp16; "
                   f"{RUNTIME_ATOL:g} for execution paths and runtimes].")
@click.option("--rtol", type=float,
              help=f"disagree: relative tolerance for outputs that are not class scores "
                   f"[default: {DEFAULT_RTOL:g}; 0.05 and 0.01 for autocast-bf16 and -fp16; "
                   f"{RUNTIME_RTOL:g} for execution paths and runtimes].")
@click.option("--max-time", type=float, help="Stop after this many seconds.")
@click.option("--runs", type=int, help="Stop after this many executions.")
@click.option("--batch-size", type=batch_size_value, default="100", show_default=True,
              metavar="auto|N", help="Mutants per forward pass; auto: timed at start-up.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed.")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch threads for the model (default: torch's own; with --workers, the "
                   "cores shared out).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: where the model is).")
@click.option("--radius", type=float, help="Bound on each mutant's distance from its seed.")
@click.option("--norm", type=click.Choice(NORMS), default="linf", show_default=True)
@click.option("--layer", "layers", multiple=True,
              help="Module whose activations form the coverage vector (repeatable).")
@click.option("--threshold", type=float, help="Nearest-neighbour distance that counts as new.")
@click.option("--max-corpus", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Most inputs in the corpus; past it, the least useful are evicted.")
@click.option("--max-corpus-mb", type=click.FloatRange(min=0, min_open=True), default=512.0,
              show_default=True, help="Most megabytes of corpus inputs; past it, the least "
                                      "useful are evicted.")
@click.option("--max-coverage-mb", type=click.FloatRange(min=0, min_open=True), default=256.0,
              show_default=True, help="Most megabytes of the novelty index; past it, it starts "
                                      "again from the corpus's coverage.")
@click.option("--stop-on-failure", is_flag=True, help="Stop at the first new failure.")
@click.option("--minimize/--no-minimize", default=True, show_default=True,
              help="Minimize each new failure toward its seed before saving it.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes sharing OUT/corpus (one per GPU by default with --device cuda).")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS|local",
              help="Run the --workers as Ray actors: on the cluster at ADDRESS, the one this "
                   "machine belongs to (auto), or a Ray instance started here (local).")
@_json_option("the run's outcome and new failures as JSON")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write JUnit XML (a failing test case per new failure) to this file.")
@handles_errors
@tracked("run")
def run(target: Path, out: Path, corpus: Path | None, objectives: tuple[str, ...],
        reference: str | None, compile_mode: str | None, atol: float | None,
        rtol: float | None, max_time: float | None,
        runs: int | None, batch_size: int | str, seed: int, threads: int | None, device: str | None,
        radius: float | None, norm: str, layers: tuple[str, ...], threshold: float | None,
        max_corpus: int, max_corpus_mb: float, max_coverage_mb: float, stop_on_failure: bool,
        minimize: bool, workers: int, ray_address: str | None, json_path: Path | None,
        junit_path: Path | None, tracker: Tracker) -> int:
    """Fuzz the model of TARGET.py; exit 1 when a new failure is found."""
    from nnfuzz.config import FuzzConfig
    from nnfuzz.api import fuzz_target
    from nnfuzz.ci import run_junit, run_summary, write_json, write_junit
    from nnfuzz.output import OutputFolder
    from nnfuzz.status import TerminalReporter
    from nnfuzz.target import file_sha256, load_target

    if target.is_file():
        OutputFolder.check_usable(out, target.name, file_sha256(target))
    loaded = load_target(target, need_seeds=corpus is None and not (out / "corpus").is_dir())
    if device is not None:
        loaded.model.to(_device(device))
    reporter = TerminalReporter(total_runs=runs, max_time=max_time)
    config = FuzzConfig(objectives=objectives or None, max_time=max_time, runs=runs,
                        batch_size=batch_size, seed=seed, radius=radius, norm=norm, layers=layers,
                        threshold=threshold, reference=reference, compile_mode=compile_mode,
                        atol=atol, rtol=rtol,
                        stop_on_failure=stop_on_failure, minimize=minimize, threads=threads,
                        max_corpus=max_corpus, max_corpus_mb=max_corpus_mb,
                        max_coverage_mb=max_coverage_mb)
    result = fuzz_target(loaded, config, out=out, corpus=corpus, reporter=reporter,
                         workers=workers, ray=ray_address, device=device, tracker=tracker)
    if json_path is not None:
        write_json(json_path, run_summary(result))
    if junit_path is not None:
        write_junit(junit_path, run_junit(result))
    return run_exit_code(result, out)


main.add_command(train)

def _device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device: use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine: use --device cpu.")
    return device


@main.command(short_help="Re-run reproducers: still fails, flaky, fixed or error.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs per reproducer: failing in some but not all is 'flaky'.")
@_json_option("the verdicts as JSON")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write JUnit XML (one test case per reproducer) to this file.")
@click.option("--script", "script_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a plain PyTorch script (torch, safetensors, the target file) that "
                   "reproduces the failure: exit 1 while it fails, 0 once fixed (one reproducer).")
@handles_errors
@tracked("replay")
def replay(target: Path, paths: tuple[Path, ...], repeat: int, json_path: Path | None,
           junit_path: Path | None, script_path: Path | None, tracker: Tracker) -> int:
    """Re-run reproducer files (or folders of them) against TARGET.py.

    Each is 'still fails', 'flaky', 'fixed' or 'error' (could not run: never
    counted as fixed). Exit 1 if any still fails or is flaky, 2 if any could
    not run, else 0.
    """
    from nnfuzz.replay import Verdict, exit_code, replay as replay_all
    from nnfuzz.reproducer import reproducer_paths
    from nnfuzz.ci import replay_junit, replay_summary, write_json, write_junit
    from nnfuzz.history import record_verdicts
    from nnfuzz.target import load_target

    loaded = load_target(target, need_seeds=False)
    files = reproducer_paths(list(paths))
    if not files:
        raise UsageError(f"no reproducer files in {', '.join(map(str, paths))}: "
                         "give .safetensors files from OUT/crashes/.")
    if script_path is not None:
        from nnfuzz.training.script import write_script

        if len(files) != 1:
            raise UsageError(f"--script writes one script: give one reproducer, not {len(files)}.")
        click.echo(f"INFO: wrote {write_script(loaded, files[0], script_path)}", err=True)
    outcomes = replay_all(loaded, files, repeat)
    tracker.verdicts(loaded, outcomes)
    record_verdicts(outcomes)  # into OUT/replays.json, for `nnfuzz report`'s nights
    if json_path is not None:
        write_json(json_path, replay_summary(outcomes))
    if junit_path is not None:
        write_junit(junit_path, replay_junit(outcomes))
    for outcome in outcomes:
        if outcome.verdict is Verdict.ERROR:
            click.echo(f"ERROR: {outcome.line()}", err=True)
        else:
            click.echo(outcome.line())
    return exit_code(outcomes)


@main.command(short_help="Minimize a reproducer toward its seed.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("reproducer", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the smaller reproducer here and leave REPRODUCER as it is "
                   "[default: replace REPRODUCER].")
@handles_errors
def minimize(target: Path, reproducer: Path, output: Path | None) -> int:
    """Minimize REPRODUCER toward its seed (a training reproducer: its trajectory, to fewer
    steps and perturbations and the default hyperparameters) while the same failure fires;
    replaces it (or -o PATH)."""
    from nnfuzz.output import save_minimized
    from nnfuzz.replay import minimize_reproducer
    from nnfuzz.reproducer import replay_command
    from nnfuzz.target import load_target

    loaded = load_target(target, need_seeds=False)
    original, smaller = minimize_reproducer(loaded, reproducer)
    path = save_minimized(smaller, reproducer, output)
    note = smaller.metadata["minimized"]
    if note.startswith("unchanged:"):
        click.echo(f"INFO: minimization changed nothing: {note.split(':', 1)[1].strip()}", err=True)
    else:
        what = ("the trajectory" if smaller.metadata.get("engine") == "train"
                else "distance from the seed")
        click.echo(f"INFO: {what}: {note}", err=True)
    click.echo(f"minimized: {path}")
    click.echo(f"  replay: {replay_command(target, path)}")
    return 0


@main.command(short_help="Summarize an output folder's runs, with a plot.")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to draw coverage and failures over time [default: OUT/report.png].")
@click.option("--no-png", is_flag=True, help="Only the summary, no plot.")
@click.option("--since", help="Only the runs and replays since this ISO date or time (UTC), "
                               "e.g. 2026-12-01 or 2026-12-01T06:00.")
@_json_option("the summary as JSON")
@handles_errors
def report(out: Path, png: Path | None, no_png: bool, since: str | None,
           json_path: Path | None) -> int:
    """Summarize the runs in the output folder OUT: totals, nights, failures, plots."""
    from nnfuzz.report import PLOT_EXTRA, plots, read_folder, record, summary
    from nnfuzz.ci import write_json

    folder = read_folder(out, since)
    for line in summary(folder):
        click.echo(line)
    if json_path is not None:
        write_json(json_path, record(folder))
    if no_png:
        return 0
    try:
        click.echo("\n".join(f"plot: {path}" for path in plots(folder, png or out / "report.png")))
    except UsageError:
        if png is not None:
            raise
        click.echo(f"INFO: no plot: matplotlib is not installed ({PLOT_EXTRA})", err=True)
    return 0


@main.command(short_help="Check a model before fuzzing or training it.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("nnfuzz-doctor"), show_default=True,
              help="Folder for doctor.json: what ran and what every check found.")
@click.option("--check", "checks", multiple=True,
              help="Run only this check (repeatable): initial-loss, overfit, gradcheck, "
                   "gradient-flow, activations, update-size, loss-sanity. Default: all.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True,
              help="Optimizer of the overfit and update-size checks.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Its learning rate.")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True,
              help="overfit: optimizer steps at most for each tiny batch.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="How many seeds (the first ones) the checks run on.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Picks gradcheck's random directions.")
@click.option("--gradcheck-all", is_flag=True,
              help="gradcheck: every value of each parameter of up to 512 values (two float64 "
                   "passes each). Default: one random direction per parameter.")
@_json_option("the record (doctor.json)")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a page with the table and the plots to this file.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Draw gradient norms, activation histograms and overfit curves into this folder.")
@handles_errors
@tracked("doctor")
def doctor(target: Path, out: Path, checks: tuple[str, ...], optimizer: str, lr: float, steps: int,
           batch_size: int, seed: int, gradcheck_all: bool, json_path: Path | None,
           html_path: Path | None, png_dir: Path | None, tracker: Tracker) -> int:
    """Check the model of TARGET.py before fuzzing or training it; exit 1 when a check fails."""
    from nnfuzz.doctor import DoctorConfig, diagnose, write_record
    from nnfuzz.doctor.report import (COLOURS, heading, summary, table, track, write_html,
                                      write_plots)
    from nnfuzz.report import pyplot
    from nnfuzz.ci import write_json
    from nnfuzz.target import load_target

    if html_path is not None or png_dir is not None:
        pyplot()  # no plots to draw: say so before the checks run, not after
    loaded = load_target(target)
    diagnosis = diagnose(loaded, DoctorConfig(optimizer=optimizer, lr=lr, batch_size=batch_size,
                                              steps=steps, seed=seed, checks=checks or None,
                                              gradcheck_all=gradcheck_all))
    click.echo(heading(diagnosis))
    for line in table(diagnosis, lambda text, status: click.style(text, fg=COLOURS[status],
                                                                  bold=True)):
        click.echo(line)
    click.echo(summary(diagnosis))
    record = write_record(diagnosis, out)
    click.echo(f"record: {record}")
    if json_path is not None:
        write_json(json_path, diagnosis.record())
    if png_dir is not None:
        for path in write_plots(diagnosis, png_dir):
            click.echo(f"plot: {path}")
    if html_path is not None:
        click.echo(f"html: {write_html(diagnosis, html_path)}")
    track(diagnosis, tracker, record, html_path)
    return diagnosis.exit_code


@main.group(short_help="Merge or minimize corpus folders.")
def corpus() -> None:
    """Look after corpus folders."""


@corpus.command("merge", short_help="Fold other corpora into one, once each.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@handles_errors
def corpus_merge(target: Path, destination: Path, sources: tuple[Path, ...]) -> int:
    """Fold the corpora SOURCES (other runs, other machines) into DESTINATION, once each."""
    from nnfuzz.corpus_files import merge_folders, starting_inputs
    from nnfuzz.target import load_target

    loaded = load_target(target, need_seeds=False)
    domain = loaded.domain(*starting_inputs(loaded.seeds, loaded.input_names,
                                            [destination, *sources]))
    added, skipped = merge_folders(domain, destination, list(sources))
    if skipped:
        click.echo(f"WARNING: skipped {len(skipped)} file(s) that are not inputs of "
                   f"{target.name}: {', '.join(skipped[:5])}", err=True)
    click.echo(f"merged: {added} new input(s) into {destination}")
    return 0


@corpus.command("minimize", short_help="Keep the fewest inputs with the same coverage.")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--threshold", type=float,
              help="Coverage threshold (default: the run's, from run.json beside FOLDER, "
                   "else derived from the seeds).")
@click.option("--layer", "layers", multiple=True,
              help="Module whose activations form the coverage vector (default: the run's).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@handles_errors
def corpus_minimize(target: Path, folder: Path, threshold: float | None,
                    layers: tuple[str, ...], dry_run: bool) -> int:
    """Keep the fewest inputs of FOLDER that reach the same coverage (libFuzzer -merge=1)."""
    from nnfuzz.distill import distill_corpus
    from nnfuzz.target import load_target

    result = distill_corpus(load_target(target, need_seeds=False), folder, threshold, layers,
                             dry_run)
    if result.skipped:
        click.echo(f"WARNING: left alone {len(result.skipped)} file(s) that are not inputs of "
                   f"{target.name}: {', '.join(result.skipped[:5])}", err=True)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"kept {len(result.kept)} of {len(result.kept) + len(result.removed)} input(s) "
               f"in {folder}: the same {result.cells} cell(s) beyond the seeds at threshold "
               f"{result.threshold:.6g} and {result.records} record(s); {verb} "
               f"{len(result.removed)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
