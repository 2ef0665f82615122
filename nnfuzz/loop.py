"""The fuzz loop and its Python API, ``nnfuzz.fuzz``.

One iteration, :meth:`Fuzzer.step`, reads top to bottom: sample parents from
the corpus, mutate them, execute the model, judge the objectives, measure
coverage, grow the corpus, report failures. Everything else here sets that
up (seeds checked, corpus and coverage primed, output folder resumed) or
tears it down (run.json written, the reason for stopping recorded).
"""

from __future__ import annotations

import enum
import shlex
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
import torch

from nnfuzz.corpus import Batch, Corpus, inputs_in_folder
from nnfuzz.coverage import Coverage, derive_threshold
from nnfuzz.domain import Inputs, as_inputs, infer_domain
from nnfuzz.errors import TargetError, UsageError
from nnfuzz.execution import STATS, Execution, Executor
from nnfuzz.mutation import MutationConfig, Mutator, distance
from nnfuzz.objectives import Finding, build_objectives, judge
from nnfuzz.output import OutputFolder
from nnfuzz.reproducer import Failure
from nnfuzz.status import Reporter, Snapshot
from nnfuzz.version import __version__, versions


class StopReason(enum.Enum):
    """Why a run ended; recorded in run.json."""

    RUNS = "reached --runs"
    MAX_TIME = "reached --max-time"
    FAILURE = "found a failure (stop_on_failure)"
    INTERRUPTED = "interrupted"

    def describe(self) -> str:
        return self.value


@dataclass(frozen=True)
class FuzzConfig:
    """The options of one run; the CLI's flags map one to one onto these."""

    objectives: tuple[str, ...] | None = None
    max_time: float | None = None
    #: Stop after this many executions (mutants run through the model).
    runs: int | None = None
    #: Mutants per forward pass: big enough to keep the model busy, small enough
    #: that a new corpus element is sampled again soon.
    batch_size: int = 100
    seed: int = 0
    radius: float | None = None
    norm: str = "linf"
    layers: tuple[str, ...] = ()
    threshold: float | None = None
    #: Use coverage feedback (corpus growth, records, gradient guidance). False
    #: turns the loop into random search around the seeds: the baseline.
    feedback: bool = True
    #: Allow the gradient-guided operator (only used with feedback).
    guided: bool = True
    stop_on_failure: bool = False
    #: Seconds between status lines and stats.jsonl records.
    status_interval: float = 1.0

    def check(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise UsageError(f"--norm {self.norm!r} is unknown: choose linf or l2.")
        for name in ("max_time", "radius", "threshold"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name.replace('_', '-')}={value!r} must be positive.")
        if self.runs is not None and self.runs < 0:
            raise UsageError(f"--runs={self.runs!r} must not be negative.")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size={self.batch_size!r} must be at least 1.")


@dataclass
class FuzzResult:
    """What a run found and how far it got."""

    failures: list[Failure]
    execs: int
    elapsed_s: float
    corpus: int
    coverage: int
    threshold: float
    stop_reason: StopReason
    #: Hits per failure signature, known ones included.
    hits: dict[str, int] = field(default_factory=dict)
    out: Path | None = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason is StopReason.INTERRUPTED


def fuzz(model: torch.nn.Module, seeds: object, *, out: str | Path | None = None,
         bounds: object = None, targets: torch.Tensor | None = None,
         corpus: str | Path | None = None, reporter: Reporter | None = None,
         source: Path | None = None, target_sha256: str | None = None,
         **options: object) -> FuzzResult:
    """Fuzz ``model`` from ``seeds`` and return what was found.

    ``options`` are the fields of :class:`FuzzConfig` (``objectives``,
    ``max_time``, ``runs``, ``seed``, ``radius``, ...). With neither
    ``max_time`` nor ``runs`` the run goes on until interrupted.
    """
    unknown = set(options) - set(FuzzConfig.__dataclass_fields__)
    if unknown:
        raise UsageError(f"fuzz() got unknown option {sorted(unknown)[0]!r}: choose from "
                         f"{', '.join(FuzzConfig.__dataclass_fields__)}.")
    for name in ("objectives", "layers"):
        if isinstance(options.get(name), str):
            options[name] = (options[name],)
    config = FuzzConfig(**{k: tuple(v) if isinstance(v, list) else v  # type: ignore[misc]
                           for k, v in options.items()})
    fuzzer = Fuzzer(model, seeds, config, out=Path(out) if out else None, bounds=bounds,
                    targets=targets, corpus=Path(corpus) if corpus else None,
                    reporter=reporter, source=source, target_sha256=target_sha256)
    try:
        return fuzzer.run()
    finally:
        fuzzer.close()


class Fuzzer:
    """One fuzzing campaign: set up by ``__init__``, driven by ``run``."""

    def __init__(self, model: torch.nn.Module, seeds: object, config: FuzzConfig, *,
                 out: Path | None = None, bounds: object = None,
                 targets: torch.Tensor | None = None, corpus: Path | None = None,
                 reporter: Reporter | None = None, source: Path | None = None,
                 target_sha256: str | None = None) -> None:
        config.check()
        self.config = config
        self.reporter = reporter or Reporter()
        self.source = source
        self.target_sha256 = target_sha256 or ""
        self.objectives = build_objectives(config.objectives)
        self.out = OutputFolder(out) if out is not None else None
        model.eval()
        self.executor = Executor(model, layers=list(config.layers), source=source)
        self.rng = torch.Generator(device=self.executor.device)
        self.rng.manual_seed(config.seed)
        seeds = _starting_inputs(seeds, corpus, self.out)
        seeds = tuple(t.to(self.executor.device) for t in seeds)
        self.domain = infer_domain(seeds, bounds, source.name if source else "seeds")
        self.targets = targets
        self._check_seeds(seeds)
        self.corpus = Corpus(self.domain, seeds, folder=self.out.corpus if self.out else None,
                             device=self.executor.device)
        if corpus is not None:
            self.corpus.load_folder(corpus, strict=True)
        if self.out is not None:
            self.corpus.load_folder(self.out.corpus, strict=False)
        gradient = self._gradient if config.feedback and config.guided else None
        self.mutator = Mutator(self.domain, MutationConfig(config.radius, config.norm), gradient)
        self.coverage = self._prime_coverage()
        self.known = self.out.known_failures() if self.out else {}
        self.hits: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.execs = 0
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc)

    def close(self) -> None:
        self.executor.close()

    # --- one iteration --------------------------------------------------------------

    def step(self, size: int) -> None:
        """Sample, mutate, execute, judge, cover, grow, report."""
        parents = (self.corpus.sample(size, self.rng) if self.config.feedback
                   else self.corpus.sample_seeds(size, self.rng))
        anchors = self.corpus.root_inputs(parents.root)
        mutants = Batch(self.mutator.mutate(parents.inputs, anchors, self.rng),
                        parents.root, parents.depth + 1)
        execution = self.executor.run(mutants.inputs)
        self.execs += mutants.size
        findings = judge(self.objectives, execution)
        if self.config.feedback:
            passed = execution.ran & ~_mask(findings, mutants.size, execution.ran.device)
            keep = self.coverage.update(execution.coverage, execution.stats, passed)
            self.corpus.add(mutants.select(keep.nonzero().flatten()))
        for finding in findings:
            self._report(finding, mutants, execution)

    # --- the campaign --------------------------------------------------------------

    def run(self) -> FuzzResult:
        self.reporter.info(f"coverage threshold {self.coverage.threshold:.6g} "
                           f"({'--threshold' if self.config.threshold else 'from the seeds'}); "
                           f"corpus {len(self.corpus)}, {len(self.known)} known failure(s)")
        self._write_run(None)
        last_status = self.started
        try:
            while (reason := self._stop_reason()) is None:
                size = self.config.batch_size
                if self.config.runs is not None:
                    size = min(size, self.config.runs - self.execs)
                self.step(size)
                if time.monotonic() - last_status >= self.config.status_interval:
                    last_status = time.monotonic()
                    self._status()
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        return self._finish(reason)

    def _stop_reason(self) -> StopReason | None:
        if self.config.stop_on_failure and self.failures:
            return StopReason.FAILURE
        if self.config.runs is not None and self.execs >= self.config.runs:
            return StopReason.RUNS
        if self.config.max_time is not None and self._elapsed() >= self.config.max_time:
            return StopReason.MAX_TIME
        return None

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
        elapsed = self._elapsed()
        return Snapshot(elapsed_s=elapsed, execs=self.execs,
                        execs_per_s=self.execs / elapsed if elapsed > 0 else 0.0,
                        corpus=len(self.corpus), coverage=len(self.coverage),
                        failures=len(self.failures))

    def _status(self) -> Snapshot:
        snapshot = self._snapshot()
        self.reporter.status(snapshot)
        if self.out is not None:
            self.out.append_stats(snapshot.record())
        return snapshot

    def _write_run(self, reason: StopReason | None) -> None:
        if self.out is None:
            return
        snapshot = self._snapshot()
        self.out.write_run({
            **versions(),
            "device": str(self.executor.device),
            "options": {k: v for k, v in asdict(self.config).items()},
            "target": str(self.source) if self.source else None,
            "target_sha256": self.target_sha256,
            "run_seed": self.config.seed,
            "threshold": self.coverage.threshold,
            "start_time": self.started_at.isoformat(),
            "end_time": datetime.now(timezone.utc).isoformat() if reason else None,
            "stop_reason": reason.describe() if reason else "running",
            "totals": {**snapshot.record(), "new_failures": len(self.failures),
                       "known_failures": len(self.known), "hits": dict(self.hits)},
        })

    # --- set-up ------------------------------------------------------------------

    def _check_seeds(self, seeds: Inputs) -> None:
        """The seeds must pass: a failing seed is a broken target, not a finding."""
        objectives = self.objectives
        for start, execution in self._executions(seeds):
            for finding in judge(objectives, execution):
                raise TargetError(f"seed {start + finding.example} already fails {finding.objective}: "
                                  f"{finding.detail}: the seeds must pass; fix the model or the seed.")
            for example, error in enumerate(execution.raised):
                if error is not None:
                    raise TargetError(f"seed {start + example} makes the model raise "
                                      f"{error.describe()}: the seeds must pass; fix the model or the seed.")

    def _executions(self, inputs: Inputs):  # type: ignore[no-untyped-def]
        size = self.config.batch_size
        for start in range(0, inputs[0].shape[0], size):
            yield start, self.executor.run(tuple(t[start:start + size] for t in inputs))

    def _prime_coverage(self) -> Coverage:
        """Coverage of the starting corpus, with the threshold derived from the seeds."""
        executions = [execution for _, execution in self._executions(self.corpus.elements())]
        vectors = torch.cat([e.coverage for e in executions])
        stats = torch.cat([e.stats for e in executions])
        threshold = self.config.threshold or self._derived_threshold(vectors)
        return Coverage(threshold, vectors, stats)

    def _derived_threshold(self, vectors: torch.Tensor) -> float:
        seed_vectors = vectors[:self.corpus.seed_count]
        if torch.unique(seed_vectors, dim=0).shape[0] >= 2:
            return derive_threshold(seed_vectors)
        # One seed gives no spacing: use its first mutants instead.
        probe = self.corpus.sample_seeds(self.config.batch_size, self.rng)
        mutants = self.mutator.mutate(probe.inputs, probe.inputs, self.rng)
        return derive_threshold(torch.cat([seed_vectors, self.executor.run(mutants).coverage]))

    # --- guidance ------------------------------------------------------------------

    def _gradient(self, inputs: Inputs, rng: torch.Generator) -> tuple[torch.Tensor | None, ...] | None:
        """Direction that drives one random activation statistic to an extreme."""
        candidates = self.coverage.records.targets()
        if not len(candidates):
            return None
        pick = int(candidates[torch.randint(len(candidates), (1,), generator=rng,
                                            device=rng.device).item()])
        module, stat = divmod(pick, len(STATS))
        lower = bool(torch.rand(1, generator=rng, device=rng.device).item() < 0.5)
        grads = self.executor.stat_gradient(inputs, module, stat)
        if grads is None:
            return None
        return tuple(-g if lower and g is not None else g for g in grads)

    # --- failures ------------------------------------------------------------------

    def _report(self, finding: Finding, mutants: Batch, execution: Execution) -> None:
        self.hits[finding.signature] += 1
        if finding.signature in self.known:
            return
        failure = self._failure(finding, mutants)
        if self.out is not None:
            self.out.save_failure(failure)
        self.known[finding.signature] = failure.path or Path()
        self.failures.append(failure)
        self.reporter.failure(failure, self._replay_command(failure))

    def _failure(self, finding: Finding, mutants: Batch) -> Failure:
        example = finding.example
        root = int(mutants.root[example])
        inputs = tuple(t[example].detach().cpu() for t in mutants.inputs)
        seed = tuple(t[0].detach().cpu() for t in self.corpus.root_inputs(torch.tensor([root])))
        target = (self.targets[root].detach().cpu()
                  if self.targets is not None and self.corpus.is_seed(root) else None)
        return Failure(inputs=inputs, seed=seed, objective=finding.objective, detail=finding.detail,
                       signature=finding.signature, target=target, metadata={
                           "nnfuzz_version": __version__,
                           "torch_version": torch.__version__,
                           "target_sha256": self.target_sha256,
                           "run_seed": str(self.config.seed),
                           "mutations": str(int(mutants.depth[example])),
                           "distance": f"{input_distance(inputs, seed, self.config.norm):.6g}",
                           "norm": self.config.norm,
                           "found_after_execs": str(self.execs),
                           "found_after_s": f"{self._elapsed():.3f}",
                       })

    def _replay_command(self, failure: Failure) -> str | None:
        if self.source is None or failure.path is None:
            return None
        return f"nnfuzz replay {shlex.quote(str(self.source))} {shlex.quote(str(failure.path))}"


def input_distance(inputs: Inputs, seed: Inputs, norm: str) -> float:
    """Distance of an input from its seed: the norm over float tensors, changed
    values over integer ones, combined across tensors in the same norm."""
    parts = []
    for tensor, anchor in zip(inputs, seed):
        if tensor.dtype.is_floating_point:
            parts.append(float(distance(tensor.unsqueeze(0), anchor.unsqueeze(0), norm)[0]))
        else:
            parts.append(float((tensor != anchor).sum()))
    if not parts:
        return 0.0
    return max(parts) if norm == "linf" else sum(p * p for p in parts) ** 0.5


def _mask(findings: list[Finding], size: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask[[f.example for f in findings]] = True
    return mask


def _starting_inputs(seeds: object, corpus: Path | None, out: OutputFolder | None) -> Inputs:
    """The seeds, or, when there are none, the inputs of the corpus folder."""
    if seeds is not None:
        return as_inputs(seeds, "seeds()")
    for folder in (corpus, out.corpus if out else None):
        if folder is not None and folder.is_dir():
            inputs = inputs_in_folder(folder)
            if inputs is not None:
                return inputs
    raise TargetError("no seeds: define seeds() in the target, or give --corpus DIR "
                      "with at least one input.")

