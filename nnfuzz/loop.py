"""The fuzz loop and its Python API, ``nnfuzz.fuzz``.

One iteration, :meth:`Fuzzer.step`, reads top to bottom: sample parents from
the corpus, mutate them, execute the model, judge the objectives, measure
coverage, grow the corpus, report failures. Everything else here sets that
up (seeds checked, corpus and coverage primed, output folder resumed) or
tears it down (run.json written, the reason for stopping recorded).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from nnfuzz.attribution import with_origin
from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.corpus import Batch, Corpus, named_inputs_in_folder
from nnfuzz.coverage import (MAX_LAYER_VALUES, Coverage, SignalLayout, is_degenerate,
                             mutant_spacing, pooled, seed_spacing, threshold_for, varying_layer)
from nnfuzz.domain import Domain, Inputs, Names
from nnfuzz.errors import NnfuzzError, TargetError, UsageError
from nnfuzz.execution import Execution, Executor
from nnfuzz.mutation import MutationConfig, Mutator, input_distance
from nnfuzz.objectives import Finding, Verdicts, build_objectives, context_for, judge
from nnfuzz.output import OutputFolder, known_failures
from nnfuzz.reproducer import Failure, replay_command
from nnfuzz.shrinker import is_smaller, minimize, reproduces, signature_check
from nnfuzz.status import Reporter, Snapshot, announce_domain
from nnfuzz.target import Target, in_memory
from nnfuzz.version import __version__, versions


def fuzz(model: torch.nn.Module, seeds: object = None, *, out: str | Path | None = None,
         bounds: object = None, inputs: object = None, targets: torch.Tensor | None = None,
         loss: Callable[..., torch.Tensor] | None = None, reference: Any = None,
         objectives: Any = None, corpus: str | Path | None = None,
         reporter: Reporter | None = None, **options: Any) -> FuzzResult:
    """Fuzz ``model`` from ``seeds`` and return what was found.

    The arguments mirror the target file (DESIGN §1): ``seeds`` (a tensor, a
    tuple, or a dict by keyword), ``bounds``, ``inputs`` (the kinds of
    ``INPUTS``), ``targets``, ``loss(output, target)``, and ``reference`` (a module or callable, or one
    of "int8", "fp16", "bf16"). ``objectives`` lists objective names and/or
    callables ``(inputs, output) -> BoolTensor (N,)``; default: every
    objective available. ``options`` are the fields of :class:`FuzzConfig`
    (``max_time``, ``runs``, ``seed``, ``radius``, ...). With neither
    ``max_time`` nor ``runs`` the run goes on until interrupted.
    """
    unknown = set(options) - set(FuzzConfig.__dataclass_fields__)
    if unknown:
        raise UsageError(f"fuzz() got unknown option {sorted(unknown)[0]!r}: choose from "
                         f"{', '.join(FuzzConfig.__dataclass_fields__)}.")
    chosen = [objectives] if isinstance(objectives, str) or callable(objectives) else objectives
    checks = [o for o in chosen or [] if callable(o)]
    if isinstance(reference, str):
        options["reference"] = reference
    target = in_memory(model, seeds, bounds=bounds, inputs=inputs, targets=targets, loss=loss,
                       reference=(lambda: reference) if reference is not None
                       and not isinstance(reference, str) else None,
                       objectives=checks)
    names = [o if isinstance(o, str) else o.__name__ for o in chosen] if chosen else None
    if isinstance(options.get("layers"), str):
        options["layers"] = (options["layers"],)
    config = FuzzConfig(objectives=tuple(names) if names else None,
                        **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    return fuzz_target(target, config, out=out, corpus=corpus, reporter=reporter)


def fuzz_target(target: Target, config: FuzzConfig, *, out: str | Path | None = None,
                corpus: str | Path | None = None, reporter: Reporter | None = None) -> FuzzResult:
    """Fuzz a loaded target file: what ``nnfuzz run`` does."""
    fuzzer = Fuzzer(target, config, out=Path(out) if out else None,
                    corpus=Path(corpus) if corpus else None, reporter=reporter)
    try:
        return fuzzer.run()
    finally:
        fuzzer.close()


@dataclass(frozen=True)
class Shared:
    """What a worker shares with the others of its run (see nnfuzz.workers); it takes
    in the others' corpus files at every status interval."""

    #: OUT/corpus: every worker saves its new inputs there and takes in the others'.
    corpus: Path
    #: OUT/crashes: failures saved there (by the parent) are known, not new.
    crashes: Path
    #: Asked between batches: the parent wants the workers to stop.
    should_stop: Callable[[], bool]
    #: When the whole run's --max-time is up (``time.monotonic()``, the same clock in
    #: every process of the machine): the parent's start-up counts, not only this worker's.
    deadline: float | None = None


class Fuzzer:
    """One fuzzing campaign: set up by ``__init__``, driven by ``run``."""

    def __init__(self, target: Target, config: FuzzConfig, *, out: Path | None = None,
                 corpus: Path | None = None, reporter: Reporter | None = None,
                 shared: "Shared | None" = None) -> None:
        config.check()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.out = OutputFolder(out) if out is not None else None
        try:
            self._set_up(target, config, corpus, reporter, shared)
        except BaseException:
            self.close()  # the folder's lock too: a run that could not start holds nothing
            raise

    def _set_up(self, target: Target, config: FuzzConfig, corpus: Path | None,
                reporter: Reporter | None, shared: "Shared | None") -> None:
        if self.out is not None:
            self.out.check_resumable(target.path.name if target.path else None, target.sha256,
                                     __version__)
        seeds, names = _starting_inputs(target, corpus, self.out)
        if target.input_names is None and names is not None:
            target = replace(target, input_names=names)  # a corpus of named inputs, no seeds()
        self.target = target
        self.config = config
        self.reporter = reporter or Reporter()
        #: Set when this is one of several workers (nnfuzz.workers): the folder they share.
        self.shared = shared
        #: What earlier runs in the output folder did: totals add up across runs.
        self.earlier = self.out.earlier_runs() if self.out else []
        self.executor = Executor(target.model.eval(), layers=list(config.layers),
                                 source=target.path, names=target.input_names)
        self.rng = torch.Generator(device=self.executor.device)
        self.rng.manual_seed(config.seed)
        seeds = tuple(t.to(self.executor.device) for t in seeds)
        self.domain = target.domain(seeds, names)
        self.context = context_for(target, config.reference, config.atol, config.rtol, self.domain)
        self.objectives = build_objectives(config.objectives, self.context)
        guidance = config.objective_guidance
        self.guides = [o for o in self.objectives
                       if (o.guides_by_default if guidance is None else guidance)]
        #: The columns records track: module statistics, then the guides' pressure.
        self.layout = SignalLayout(len(self.executor.module_names),
                                   sum(o.pressure_columns for o in self.guides))
        self.seed_count = seeds[0].shape[0]
        #: The label of each seed (targets()), of those fuzzed from.
        self.labels = target.targets
        #: What the start of the run says besides the domain and the threshold.
        self.notes = [note for note in [self.executor.confirm_unobserved(
            tuple(t[:config.batch_size] for t in seeds))] if note]
        #: What the start of the run warns about besides the domain.
        self.notes_warned: list[str] = []
        seeds = self._passing_seeds(seeds)
        corpus_folder = self.out.corpus if self.out else shared.corpus if shared else None
        self.corpus = Corpus(self.domain, seeds, folder=corpus_folder, device=self.executor.device)
        if corpus is not None:
            self.corpus.load_folder(corpus, strict=True)
        if corpus_folder is not None:
            self.corpus.load_folder(corpus_folder, strict=False)
        gradient = self._gradient if config.feedback and config.guided else None
        self.mutator = Mutator(self.domain, MutationConfig(config.radius, config.norm, config.edges),
                               gradient)
        self.coverage = self._prime_coverage()
        self.known = (self.out.known_failures() if self.out
                      else known_failures(shared.crashes, quiet=True) if shared else {})
        self.hits: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.execs = 0
        #: Inputs this run added to the corpus (some may have been evicted since).
        self.kept = 0
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc)

    def close(self) -> None:
        if getattr(self, "executor", None) is not None:
            self.executor.close()
        if self.out is not None:
            self.out.close()

    # --- one iteration --------------------------------------------------------------

    def step(self, size: int) -> None:
        """Sample, mutate, execute, judge, cover, grow, report."""
        parents = (self.corpus.sample(size, self.rng) if self.config.feedback
                   else self.corpus.sample_seeds(size, self.rng))
        anchors = self.corpus.root_inputs(parents.root)
        mutants = Batch(self.mutator.mutate(parents.inputs, anchors, self.rng),
                        parents.root, parents.depth + 1)
        execution = self._execute(mutants.inputs, mutants.root)
        self.execs += mutants.size
        verdicts = judge(self.objectives, execution, self.guides)
        if self.config.feedback:
            passed = execution.ran & ~verdicts.failing(mutants.size, execution.ran.device)
            keep = self.coverage.update(execution.coverage, self._signals(execution, verdicts),
                                        passed, parents.vectors)
            mutants.vectors = execution.coverage
            kept = keep.nonzero().flatten()
            self.kept += self.corpus.add(mutants.select(kept))
            self.corpus.credit(parents.index[kept.to(parents.index.device)])
            self.corpus.evict(self.config.max_corpus, _bytes(self.config.max_corpus_mb))
        for finding in verdicts.findings:
            self._report(finding, mutants)

    def _execute(self, inputs: Inputs, roots: torch.Tensor) -> Execution:
        """Run the model; each example carries its seed's label when the target has targets()."""
        execution = self.executor.run(inputs)
        labels = self.labels
        if labels is not None:
            roots = roots.to(labels.device)
            execution.targets = labels[roots.clamp(max=self.seed_count - 1)].to(self.executor.device)
            execution.has_target = (roots < self.seed_count).to(self.executor.device)
        return execution

    def _signals(self, execution: Execution, verdicts: Verdicts) -> torch.Tensor:
        """What records track (self.layout): every module statistic, then the guides' pressure."""
        return self.layout.combine(execution.stats, verdicts.pressure)

    # --- the campaign --------------------------------------------------------------

    def run(self) -> FuzzResult:
        announce_domain(self.reporter, self.domain)
        for note in self.notes_warned:
            self.reporter.warning(note)
        for note in self.notes:
            self.reporter.info(note)
        self.reporter.info(f"coverage threshold {self.coverage.threshold:.6g} "
                           f"({'--threshold' if self.config.threshold else 'from the seeds'}); "
                           f"corpus {len(self.corpus)}, {len(self.known)} known failure(s)")
        self._write_run(None)
        try:
            while (reason := self.run_slice(self.config.status_interval)) is None:
                self._status()
                self._write_run(None)  # so that a killed run's work still counts in the totals
                if self.shared is not None:
                    self.import_shared()
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        except NnfuzzError:
            self._finish(StopReason.ERROR)
            raise
        return self._finish(reason)

    def run_slice(self, seconds: float) -> StopReason | None:
        """Fuzz for about ``seconds``; returns why the campaign is over, or None if it is not."""
        deadline = time.monotonic() + seconds
        while (reason := self._stop_reason()) is None and time.monotonic() < deadline:
            size = self.config.batch_size
            if self.config.runs is not None:
                size = min(size, self.config.runs - self.execs)
            self.step(size)
        return reason

    def _stop_reason(self) -> StopReason | None:
        if self.shared is not None and self.shared.should_stop():
            return StopReason.STOPPED
        if self.config.stop_on_failure and self.failures:
            return StopReason.FAILURE
        if self.config.runs is not None and self.execs >= self.config.runs:
            return StopReason.RUNS
        deadline = self._deadline()
        if deadline is not None and time.monotonic() >= deadline:
            return StopReason.MAX_TIME
        return None

    def _deadline(self) -> float | None:
        """When --max-time is up: this run's own, or the whole run's for a worker."""
        deadlines = []
        if self.config.max_time is not None:
            deadlines.append(self.started + self.config.max_time)
        if self.shared is not None and self.shared.deadline is not None:
            deadlines.append(self.shared.deadline)
        return min(deadlines, default=None)

    def _finish(self, reason: StopReason) -> FuzzResult:
        snapshot = self._status()
        self._write_run(reason)
        self.reporter.finish(snapshot, reason.describe())
        return FuzzResult(failures=self.failures, execs=self.execs, elapsed_s=self._elapsed(),
                          corpus=len(self.corpus), coverage=len(self.coverage),
                          threshold=self.coverage.threshold, stop_reason=reason,
                          hits=dict(self.hits), out=self.out.path if self.out else None)

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _snapshot(self) -> Snapshot:
        """Counters across every run in the output folder; the rate is this run's."""
        elapsed = self._elapsed()
        return Snapshot(elapsed_s=elapsed + summed(self.earlier, "elapsed_s"),
                        execs=self.execs + int(summed(self.earlier, "execs")),
                        execs_per_s=self.execs / elapsed if elapsed > 0 else 0.0,
                        corpus=len(self.corpus), coverage=len(self.coverage),
                        failures=len(self.failures), saved_failures=len(self.known),
                        run=len(self.earlier) + 1,
                        corpus_mb=self.corpus.stored_bytes / 2**20,
                        kept_per_min=60 * self.kept / elapsed if elapsed > 0 else 0.0,
                        threshold=self.coverage.threshold)

    def _status(self) -> Snapshot:
        snapshot = self._snapshot()
        self.reporter.status(snapshot)
        if self.out is not None:
            self.out.append_stats(snapshot.record())
        return snapshot

    def _write_run(self, reason: StopReason | None) -> None:
        if self.out is None:
            return
        self.out.write_run(run_record(
            target=self.target, config=self.config, device=str(self.executor.device),
            threshold=self.coverage.threshold, started_at=self.started_at, reason=reason,
            elapsed_s=self._elapsed(), execs=self.execs, failures=len(self.failures),
            hits=self.hits, known=len(self.known), earlier=self.earlier,
            snapshot=self._snapshot(), coverage_layers=self.executor.layers))

    # --- set-up ------------------------------------------------------------------

    def _passing_seeds(self, seeds: Inputs) -> Inputs:
        """The seeds must pass: a failing seed is a broken target, not a finding. Seeds that
        already disagree with the reference are dropped instead, unless all do: a model and
        its bf16 copy rarely agree on every real input."""
        disagreeing = []
        for start, execution in self._executions(seeds):
            for example, error in enumerate(execution.raised):
                if error is not None:
                    shapes = ", ".join(f"{tuple(t.shape[1:])} {t.dtype}" for t in seeds)
                    raise TargetError(f"seed {start + example} makes the model raise an exception, "
                                      f"{error.describe()}: the seeds must be inputs the model "
                                      f"accepts (each seed is {shapes}); fix the seeds or the model.")
            for finding in judge(self.objectives, execution).findings:
                if finding.objective != "disagree":
                    raise TargetError(f"seed {start + finding.example} already fails "
                                      f"{finding.objective}: {finding.detail}: the seeds must pass; "
                                      "fix the model or the seed.")
                disagreeing.append((start + finding.example, finding.detail))
        if not disagreeing:
            return seeds
        count = seeds[0].shape[0]
        if len(disagreeing) == count:
            raise TargetError(f"every seed already fails disagree (seed 0: {disagreeing[0][1]}): "
                              "give seeds the model and its reference agree on, or loosen "
                              "--atol/--rtol.")
        keep = torch.tensor(sorted(set(range(count)) - {row for row, _ in disagreeing}),
                            device=seeds[0].device)
        self.notes_warned.append(
            f"{len(disagreeing)} of {count} seeds already disagree with the reference (seed "
            f"{disagreeing[0][0]}: {disagreeing[0][1]}): fuzzing from the other {len(keep)}")
        if self.labels is not None:
            self.labels = self.labels[keep.to(self.labels.device)]
        self.seed_count = len(keep)
        return tuple(t[keep] for t in seeds)

    def _executions(self, inputs: Inputs, roots: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
        """Executions of ``inputs`` in batches; ``roots`` default to the inputs being the seeds."""
        count, size = inputs[0].shape[0], self.config.batch_size
        if roots is None:
            roots = torch.arange(count, device=self.executor.device)
        for start in range(0, count, size):
            yield start, self._execute(tuple(t[start:start + size] for t in inputs),
                                       roots[start:start + size])

    def _prime_coverage(self) -> Coverage:
        """Coverage of the starting corpus, with the threshold derived from the seeds; on
        another layer when the model's output cannot tell the seeds apart."""
        executions, spacing = self._prime_executions()
        if is_degenerate(spacing) and not self.config.threshold:
            executions, spacing = self._vary_coverage(executions, spacing)
        vectors = torch.cat([e.coverage for e in executions])
        signals = torch.cat([self._signals(e, judge(self.objectives, e, self.guides))
                             for e in executions])
        threshold = self.config.threshold or max(threshold_for(spacing), self._earlier_threshold())
        self.corpus.set_vectors(vectors)
        return Coverage(threshold, vectors, signals, low_only_from=self.layout.statistics,
                        adaptive=not self.config.threshold)

    def _earlier_threshold(self) -> float:
        """Where the last run of the output folder left its threshold (it grows during a run):
        a resumed run does not flood again on its way there."""
        last = self.earlier[-1] if self.earlier else {}
        threshold = last.get("threshold")
        if last.get("coverage_layers", []) != self.executor.layers:
            return 0.0  # another layer: another scale
        return float(threshold) if isinstance(threshold, (int, float)) else 0.0

    def _prime_executions(self) -> tuple[list[Execution], float]:
        """The starting corpus run once, and how far apart the seeds' coverage vectors lie."""
        executions = [execution for _, execution in
                      self._executions(self.corpus.elements(), self.corpus.element_root_indices())]
        seed_vectors = torch.cat([e.coverage for e in executions])[:self.corpus.seed_count]
        if torch.unique(seed_vectors, dim=0).shape[0] >= 2:
            return executions, seed_spacing(seed_vectors)
        # One seed gives no spacing: use its first mutants instead.
        probe = self.corpus.sample_seeds(self.config.batch_size, self.rng)
        unguided = Mutator(self.domain, self.mutator.config)  # no records to guide by yet
        mutants = unguided.mutate(probe.inputs, probe.inputs, self.rng)
        return executions, mutant_spacing(seed_vectors, self.executor.run(mutants).coverage)

    def _vary_coverage(self, executions: list[Execution],
                       spacing: float) -> tuple[list[Execution], float]:
        """Coverage vectors that do not vary over the seeds: said, and, unless --layer chose
        them, replaced by the last layer whose activations do."""
        where = (f"layer {', '.join(map(repr, self.executor.layers))}" if self.executor.layers
                 else "the model's output")
        self.notes_warned.append(
            f"coverage: {where} hardly varies over the seeds (their vectors lie {spacing:.3g} "
            "apart): novelty cannot tell inputs apart there" +
            ("; choose another --layer" if self.executor.layers else ""))
        if self.executor.layers:
            return executions, spacing
        seeds = tuple(t[:self.config.batch_size] for t in self.corpus.root_inputs(
            torch.arange(self.seed_count, device=self.executor.device)))
        chosen = varying_layer(self.executor.activations(seeds))
        if chosen is None:
            return executions, spacing
        self.executor.use_layers([chosen], pooled)
        self.notes.append(f"coverage from layer {chosen!r} instead: the last whose activations "
                          f"vary over the seeds, averaged down to {MAX_LAYER_VALUES} values where "
                          "wider (--layer chooses another)")
        return self._prime_executions()

    def import_shared(self) -> None:
        """Take in the corpus files other workers saved since the last look."""
        found = self.corpus.new_in_folder(self.shared.corpus)  # type: ignore[union-attr]
        if not found:
            return
        inputs = tuple(torch.cat(column) for column in zip(*(i for i, _ in found)))
        unknown = len(self.corpus) + self.seed_count  # no known seed: no label
        roots = torch.tensor([r if (r := self.corpus.root_of(m)) is not None else unknown
                              for _, m in found], device=self.executor.device)
        executions = [e for _, e in self._executions(inputs, roots)]
        vectors = torch.cat([e.coverage for e in executions])
        self.coverage.take_in(vectors, torch.cat([
            self._signals(e, judge(self.objectives, e, self.guides)) for e in executions]))
        self.corpus.add_imported(found, vectors)

    # --- guidance ------------------------------------------------------------------

    def _gradient(self, inputs: Inputs, rng: torch.Generator) -> tuple[torch.Tensor | None, ...] | None:
        """Direction that drives an objective's steering quantity down (half the time,
        when a guiding objective has one) or one activation statistic to an extreme."""
        steering = [s for s in (o.steer() for o in self.guides) if s is not None]
        if steering and bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5):
            pick = int(torch.randint(len(steering), (1,), generator=rng, device=rng.device).item())
            grads = self.executor.gradient(inputs, steering[pick])
            return None if grads is None else tuple(-g if g is not None else g for g in grads)
        candidates = self.coverage.records.targets()
        candidates = candidates[candidates < self.layout.statistics]
        if not len(candidates):
            return None
        pick = int(candidates[torch.randint(len(candidates), (1,), generator=rng,
                                            device=rng.device).item()])
        module, stat = self.layout.statistic(pick)  # type: ignore[misc]
        lower = bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5)
        grads = self.executor.stat_gradient(inputs, module, stat)
        if grads is None:
            return None
        return tuple(-g if lower and g is not None else g for g in grads)

    # --- failures ------------------------------------------------------------------

    def _report(self, finding: Finding, mutants: Batch) -> None:
        self.hits[finding.signature] += 1
        if finding.signature in self.known:
            return
        failure = with_origin(self._failure(finding, mutants), self.target.model, self.domain.names,
                              self.target.path)
        if self.out is not None:
            self.out.save_failure(failure)
        if self.config.minimize:
            failure = self._minimized(failure)
        self.known[finding.signature] = failure.path or Path()
        self.failures.append(failure)
        self.reporter.failure(failure, self._replay_command(failure))

    def _minimized(self, failure: Failure) -> Failure:
        """The failure shrunk toward its seed, replacing its reproducer when smaller."""
        objective = next(o for o in self.objectives if o.name == failure.objective)
        still_fails = signature_check(failure, objective, self.executor)
        if not reproduces(failure, still_fails):
            warnings.warn(f"{failure.objective} ({failure.detail}) fired in a batch but not on the "
                          "input alone: it depends on the batch, and replay may call it fixed",
                          stacklevel=2)
            return failure
        smaller = minimize(failure, still_fails, self.domain, self._deadline())
        if not is_smaller(smaller, failure):
            return failure
        if self.out is not None:
            self.out.replace_failure(failure, smaller)
        return smaller

    def _failure(self, finding: Finding, mutants: Batch) -> Failure:
        example = finding.example
        root = int(mutants.root[example])
        inputs = tuple(t[example].detach().cpu() for t in mutants.inputs)
        seed = tuple(t[0].detach().cpu() for t in self.corpus.root_inputs(torch.tensor([root])))
        labels = self.labels
        target = labels[root].detach().cpu() if labels is not None and self.corpus.is_seed(root) else None
        objective = next(o for o in self.objectives if o.name == finding.objective)
        return Failure(inputs=inputs, seed=seed, objective=finding.objective, detail=finding.detail,
                       signature=finding.signature, target=target, names=self.domain.names, metadata={
                           "nnfuzz_version": __version__,
                           "torch_version": torch.__version__,
                           "target_sha256": self.target.sha256,
                           "run_seed": str(self.config.seed),
                           "mutations": str(int(mutants.depth[example])),
                           "distance": f"{input_distance(inputs, seed, self.config.norm):.6g}",
                           "norm": self.config.norm,
                           "found_after_execs": str(self.execs),
                           "found_after_s": f"{self._elapsed():.3f}",
                           **objective.reproducer_metadata(),
                       })

    def _replay_command(self, failure: Failure) -> str | None:
        if self.target.path is None or failure.path is None:
            return None
        return replay_command(self.target.path, failure.path)


def run_record(*, target: Target, config: FuzzConfig, device: str, threshold: float | None,
               started_at: datetime, reason: StopReason | None, elapsed_s: float, execs: int,
               failures: int, hits: Counter[str], known: int, earlier: list[dict[str, Any]],
               snapshot: Snapshot, workers: int | None = None,
               coverage_layers: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """run.json (DESIGN §4): what ran, and totals across every run of the folder."""
    what_ran = {
        "target_sha256": target.sha256,
        "seeds_sha256": target.seeds_sha256,
        "run_seed": config.seed,
        "start_time": started_at.isoformat(),
        "end_time": datetime.now(timezone.utc).isoformat() if reason else None,
        "stop_reason": reason.describe() if reason else "running",
    }
    this_run = {"nnfuzz": __version__, **what_ran, "execs": execs, "threshold": threshold,
                "coverage_layers": list(coverage_layers),
                "elapsed_s": round(elapsed_s, 3), "new_failures": failures, "hits": dict(hits)}
    if workers is not None:
        this_run["workers"] = workers
    every_hit = Counter(hits)
    for run in earlier:
        every_hit.update(run.get("hits") or {})
    return {
        **versions(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "options": asdict(config),
        "target": str(target.path) if target.path else None,
        "threshold": threshold,
        "coverage_layers": list(coverage_layers),
        **what_ran,
        "totals": {**_without(snapshot.record(), "run"), "runs": len(earlier) + 1,
                   "new_failures": failures, "known_failures": known, "hits": dict(every_hit)},
        "runs": [*earlier, this_run],
    }


def summed(runs: list[dict[str, object]], key: str) -> float:
    """The sum of a number over the runs of run.json's history."""
    return float(sum(r.get(key) or 0 for r in runs if isinstance(r.get(key, 0), (int, float))))


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


def _bytes(megabytes: float | None) -> float | None:
    return megabytes * 2**20 if megabytes is not None else None


def _starting_inputs(target: Target, corpus: Path | None,
                     out: OutputFolder | None) -> tuple[Inputs, Names]:
    """The seeds, or, when there are none, the inputs of the corpus folder (and their names)."""
    if target.seeds is not None:
        return target.seeds, target.input_names
    for folder in (corpus, out.corpus if out else None):
        if folder is not None and folder.is_dir():
            found = named_inputs_in_folder(folder)
            if found is not None:
                return found
    raise TargetError("no seeds: define seeds() in the target, or give --corpus DIR "
                      "with at least one input.")
