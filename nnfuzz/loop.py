"""The fuzz loop: the engine that every driver runs (nnfuzz.drivers).

One iteration, :meth:`Fuzzer.step`, reads top to bottom: sample parents from
the corpus, mutate them, execute the model, judge the objectives, measure
coverage, grow the corpus, report failures. Everything else here sets that
up (seeds checked, corpus and coverage primed from the run's folder) or
reads it (progress, slices). The run's bookkeeping (output folder, known
failures, status, run.json) is the Campaign's, not the engine's.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from nnfuzz.attribution import with_origin
from nnfuzz.batch_sizing import sized
from nnfuzz.config import FuzzConfig
from nnfuzz.corpus import Corpus
from nnfuzz.corpus_files import CorpusFolder, starting_inputs
from nnfuzz.coverage import (MAX_LAYER_VALUES, Coverage, SignalLayout, is_degenerate,
                             mutant_spacing, pooled, seed_spacing, threshold_for, varying_layer)
from nnfuzz.descent import Descent
from nnfuzz.domain import Inputs
from nnfuzz.drivers.engine import EngineStart, FailureSink, Progress, StartUp
from nnfuzz.execution import Execution, Executor
from nnfuzz.guidance import Guidance, guiding
from nnfuzz.lineage import Batch
from nnfuzz.mutation import MutationConfig, Mutator, input_distance
from nnfuzz.minimizer import is_smaller, minimize, reproduces, signature_check
from nnfuzz.objectives import (BatchJudgement, Finding, build_objectives, context_for, judge,
                               judging)
from nnfuzz.reproducer import Failure
from nnfuzz.seed_check import disagreeing_seeds, said_with_seed_shapes, seeds_to_keep
from nnfuzz.target import Target
from nnfuzz.version import __version__

class Fuzzer:
    """The fuzzing engine (nnfuzz.drivers.engine.Engine): set up by ``__init__`` (seeds
    checked, corpus and coverage primed, from where ``start`` says), then ``step`` after
    ``step``. It keeps no run bookkeeping: its failures go to ``sink``, its progress is read
    with ``progress()``. A context manager: ``close`` releases the model's hook.
    """

    def __init__(self, target: Target, config: FuzzConfig, sink: FailureSink,
                 start: EngineStart = EngineStart()) -> None:
        config.check()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.sink, self.start = sink, start
        try:
            self._set_up(target, config, start.corpus, start.folder)
        except BaseException:
            self.close()
            raise

    def _set_up(self, target: Target, config: FuzzConfig, corpus: Path | None,
                folder: Path | None) -> None:
        seeds, names = starting_inputs(target.seeds, target.input_names, [corpus, folder])
        if target.input_names is None and names is not None:
            target = replace(target, input_names=names)  # a corpus of named inputs, no seeds()
        self.target = target
        self.config = config
        self.executor = Executor(target.model.eval(), layers=list(config.layers),
                                 source=target.path, names=target.input_names)
        self.rng = torch.Generator(device=self.executor.device)
        self.rng.manual_seed(config.seed)
        seeds = tuple(t.to(self.executor.device) for t in seeds)
        self.domain = target.domain(seeds, names)
        building = time.perf_counter()
        self.context = context_for(target, config.reference, config.atol, config.rtol, self.domain,
                                   config.compile_mode)
        reference = self.context.reference
        #: What the start of the run says besides the domain and the threshold.
        self.notes = [] if reference is None else [
            f"disagree compares the model with {reference.describe()}, built in "
            f"{time.perf_counter() - building:.3g} s"]
        self.objectives = build_objectives(config.objectives, self.context)
        self.guides = guiding(self.objectives, config.objective_guidance)
        #: The columns records track: module statistics, then the guides' pressure.
        self.layout = SignalLayout(len(self.executor.module_names),
                                   sum(o.pressure_columns for o in self.guides))
        self.seed_count = seeds[0].shape[0]
        #: The label of each seed (targets()), of those fuzzed from.
        self.labels = target.labels
        config, sizing = sized(config, self.executor, seeds, folder)  # --batch-size auto
        self.config, self.notes = config, self.notes + sizing
        self.notes += [note for note in [self.executor.confirm_unobserved(
            tuple(t[:config.batch_size] for t in seeds))] if note]
        #: What the start of the run warns about besides the domain.
        self.notes_warned: list[str] = []
        seeds = self._passing_seeds(seeds)
        shared = CorpusFolder(folder) if folder is not None else None
        self.corpus = Corpus(self.domain, seeds, folder=shared, device=self.executor.device)
        if corpus is not None:
            self.corpus.load_folder(CorpusFolder(corpus), strict=True)
        if shared is not None:
            self.corpus.load_folder(shared, strict=False)
        mutation = MutationConfig(config.radius, config.norm, config.edges, config.schedule)
        self.coverage = self._prime_coverage(mutation)
        # Nothing set up here refers back to the engine (no bound method of it, no closure
        # over it): a Fuzzer that is dropped without close() goes at once, and with it the
        # executor's process-wide hook, not when the cyclic collector happens to run.
        guidance = (Guidance(self.executor, self.guides, self.layout, self.coverage.records.finite_columns)
                    if config.feedback and config.guided else None)
        self.mutator = Mutator(self.domain, mutation, guidance)
        self.descent = (Descent(self.domain, self.mutator, guidance, self.labels)
                        if guidance is not None and config.descent and Descent.applies(self.domain)
                        else None)
        # Coverage-guided search, or random mutation (feedback=False: every mutant from a
        # seed, nothing kept), chosen once here rather than at every step.
        self._sample = self.corpus.sample if config.feedback else self.corpus.sample_seeds
        self._grow = Fuzzer._keep_new_coverage if config.feedback else Fuzzer._keep_nothing
        self.execs = 0
        #: Inputs this run added to the corpus (some may have been evicted since).
        self.kept = 0
        self.started = time.monotonic()

    def close(self) -> None:
        if getattr(self, "executor", None) is not None:
            self.executor.close()

    def __enter__(self) -> "Fuzzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one iteration --------------------------------------------------------------

    def step(self, size: int | None = None) -> None:
        """Sample, mutate, execute, judge, cover, grow, report; or, when a descent walk is
        due, one step of it. ``size``: mutants in the batch; by default --batch-size, or what
        is left of --runs when less."""
        if size is None:
            size = self.config.batch_size
            if self.config.runs is not None:
                size = min(size, self.config.runs - self.execs)
        if self.descent is not None and size >= self.descent.width and self.descent.due(self.execs):
            self._descend()
            return
        sampled = self._sample(size, self.rng)
        # Without a radius nothing is projected and the anchors are not read (needs_anchors).
        anchors = (self.corpus.root_inputs(sampled.root) if self.mutator.needs_anchors
                   else sampled.inputs)
        parents, mutants = self.mutator.children(sampled, anchors, self.rng)
        execution = self._execute(mutants.inputs, mutants.root)
        self.execs += mutants.size
        judged = judge(self.objectives, execution, self.guides)
        self._grow(self, parents, mutants.with_vectors(execution.coverage), execution, judged)
        for finding in judged.findings:
            self._report(finding, mutants)

    def _descend(self) -> None:
        """One step of a descent walk: its iterates run, are judged and report failures as
        mutants do; the walk's last step is offered to coverage like a batch of mutants."""
        descent = self.descent
        assert descent is not None
        records = self.coverage.records
        iterates = descent.next_iterates(self.corpus, (records.low, records.high), self.rng)
        if iterates is None:
            return
        execution = self._execute(iterates.inputs, iterates.root)
        self.execs += iterates.size
        judged = judge(self.objectives, execution, self.guides)
        fresh = sum(not self.sink.is_known(finding.signature) for finding in judged.findings)
        if descent.observe(self._signals(execution, judged), fresh):
            descent.finish()
            self._keep_new_coverage(iterates, iterates.with_vectors(execution.coverage),
                                    execution, judged)
        for finding in judged.findings:
            self._report(finding, iterates)

    def _keep_new_coverage(self, parents: Batch, mutants: Batch, execution: Execution,
                           judged: BatchJudgement) -> None:
        """Mutants that passed and are novel or set a record join the corpus; their parents
        get the credit; past a cap, the corpus evicts, and the novelty index forgets."""
        if execution.none_ran:
            return  # every example raised: no coverage to measure
        ran = execution.ran
        passed = ran & ~judged.failing(mutants.size, ran.device) if judged.findings else ran
        keep = self.coverage.update(execution.coverage, self._signals(execution, judged),
                                    passed, parents.vectors)
        kept = keep.nonzero().flatten()
        if len(kept):  # most batches keep nothing once warmed up: nothing to add or credit
            self.kept += self.corpus.add(mutants.select(kept))
            if parents.index is not None:
                self.corpus.credit(parents.index[kept.to(parents.index.device)])
        if parents.index is not None:  # a descent walk's starts are not corpus elements
            self.mutator.observe(self.coverage.recorded)  # the schedule's yields (if on)
        self.corpus.evict(self.config.max_corpus, _bytes(self.config.max_corpus_mb))
        self.coverage.forget(_bytes(self.config.max_coverage_mb), self.corpus.vectors())

    def _keep_nothing(self, parents: Batch, mutants: Batch, execution: Execution,
                      judged: BatchJudgement) -> None:
        """Random mutation keeps no corpus: every mutant comes from a seed."""

    def _execute(self, inputs: Inputs, roots: torch.Tensor) -> Execution:
        """Run the model; each example carries its seed's label when the target has targets()."""
        labels = self.labels
        if labels is None:
            return self.executor.run(inputs)
        roots = roots.to(labels.device)
        return self.executor.run(inputs, labels=labels[roots.clamp(max=self.seed_count - 1)],
                                 has_label=roots < self.seed_count)

    def _signals(self, execution: Execution, judged: BatchJudgement) -> torch.Tensor:
        """What records track (self.layout): every module statistic, then the guides' pressure."""
        return self.layout.combine(execution.stats, judged.pressure)

    # --- slices ------------------------------------------------------------------

    def startup(self) -> StartUp:
        """What this engine learnt while it set itself up (see :class:`StartUp`)."""
        api = self.target.path is None
        return StartUp(domain=tuple(self.domain.describe()),
                       domain_warnings=tuple(self.domain.warnings(api)),
                       warnings=tuple(self.notes_warned), infos=tuple(self.notes),
                       threshold=self.coverage.threshold,
                       threshold_from="--threshold" if self.config.threshold else "from the seeds",
                       corpus=len(self.corpus), device=str(self.executor.device),
                       coverage_layers=tuple(self.executor.layers),
                       record={"batch_size": self.config.batch_size})

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def progress(self) -> Progress:
        """This engine's counters (a Campaign adds time, the run's failures and earlier runs)."""
        elapsed = self.elapsed()
        return Progress(execs=self.execs, corpus=len(self.corpus), coverage=len(self.coverage),
                        corpus_mb=self.corpus.stored_bytes / 2**20,
                        kept_per_min=60 * self.kept / elapsed if elapsed > 0 else 0.0,
                        threshold=self.coverage.threshold)

    # --- set-up ------------------------------------------------------------------

    def _passing_seeds(self, seeds: Inputs) -> Inputs:
        """The seeds, checked (nnfuzz.seed_check); those that disagree with the reference
        dropped, with a warning."""
        executions = said_with_seed_shapes(self._executions(seeds), seeds, self.target.origin)
        disagreeing = disagreeing_seeds(executions, self.objectives, seeds)
        if not disagreeing:
            return seeds
        keep, warning = seeds_to_keep(disagreeing, seeds[0].shape[0], seeds[0].device)
        self.notes_warned.append(warning)
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

    def _prime_coverage(self, mutation: MutationConfig) -> Coverage:
        """Coverage of the starting corpus, with the threshold derived from the seeds; on
        another layer when the model's output cannot tell the seeds apart."""
        executions, spacing = self._prime_executions(mutation)
        if is_degenerate(spacing) and not self.config.threshold:
            executions, spacing = self._vary_coverage(executions, spacing, mutation)
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
        resume = self.start.resume
        if resume is None or list(resume.coverage_layers) != list(self.executor.layers):
            return 0.0  # another layer: another scale
        return resume.threshold

    def _prime_executions(self, mutation: MutationConfig) -> tuple[list[Execution], float]:
        """The starting corpus run once, and how far apart the seeds' coverage vectors lie."""
        executions = [execution for _, execution in
                      self._executions(self.corpus.elements(), self.corpus.element_root_indices())]
        seed_vectors = torch.cat([e.coverage for e in executions])[:self.corpus.seed_count]
        if torch.unique(seed_vectors, dim=0).shape[0] >= 2:
            return executions, seed_spacing(seed_vectors)
        # One seed gives no spacing: use its first mutants instead.
        probe = self.corpus.sample_seeds(self.config.batch_size, self.rng)
        unguided = Mutator(self.domain, mutation)  # no records to guide by yet
        mutants = unguided.mutate(probe.inputs, probe.inputs, self.rng)
        return executions, mutant_spacing(seed_vectors, self.executor.run(mutants).coverage)

    def _vary_coverage(self, executions: list[Execution], spacing: float,
                       mutation: MutationConfig) -> tuple[list[Execution], float]:
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
        return self._prime_executions(mutation)

    def import_shared(self) -> None:
        """Take in the corpus files other workers saved into the folder since the last look."""
        if self.start.folder is None:
            return
        found = self.corpus.new_in_folder()
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

    # --- failures ------------------------------------------------------------------

    def _report(self, finding: Finding, mutants: Batch) -> None:
        self.sink.hit(finding.signature)
        if self.sink.is_known(finding.signature):
            return
        failure = with_origin(self._failure(finding, mutants), self.target.model, self.domain.names,
                              self.target.path)
        self.sink.take(failure, self.minimized if self.config.minimize else None)

    def minimized(self, failure: Failure) -> Failure:
        """The failure shrunk toward its seed, or itself when nothing smaller fails the same."""
        objective = judging(self.objectives, failure.objective, failure.metadata)
        still_fails = signature_check(failure, objective, self.executor)
        if not reproduces(failure, still_fails):
            warnings.warn(f"{failure.objective} ({failure.detail}) fired in a batch but not on the "
                          "input alone: it depends on the batch, and replay may call it fixed",
                          stacklevel=2)
            return failure
        smaller = minimize(failure, still_fails, self.domain, self.start.deadline)
        if is_smaller(smaller, failure):
            return smaller
        return replace(failure, metadata={**failure.metadata,
                                          "minimized": smaller.metadata["minimized"]})

    def _failure(self, finding: Finding, mutants: Batch) -> Failure:
        example = finding.example
        root = int(mutants.root[example])
        inputs = tuple(t[example].detach().cpu() for t in mutants.inputs)
        seed = tuple(t[0].detach().cpu() for t in self.corpus.root_inputs(torch.tensor([root])))
        labels = self.labels
        label = labels[root].detach().cpu() if labels is not None and self.corpus.is_seed(root) else None
        objective = judging(self.objectives, finding.objective, finding.metadata)
        return Failure(inputs=inputs, seed=seed, objective=finding.objective, detail=finding.detail,
                       signature=finding.signature, label=label, names=self.domain.names, metadata={
                           "nnfuzz_version": __version__,
                           "torch_version": torch.__version__,
                           "target_sha256": self.target.sha256,
                           "run_seed": str(self.config.seed),
                           "mutations": str(int(mutants.depth[example])),
                           "distance": f"{input_distance(inputs, seed, self.config.norm):.6g}",
                           "norm": self.config.norm,
                           "found_after_execs": str(self.execs),
                           "found_after_s": f"{self.elapsed():.3f}",
                           **objective.reproducer_metadata(), **finding.metadata,
                       })


def _bytes(megabytes: float | None) -> float | None:
    return megabytes * 2**20 if megabytes is not None else None
