"""Replaying reproducers: does each saved failure still fail?

A reproducer records its objective and signature; replay runs the model on
the saved input and re-judges with that objective alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from pathlib import Path

from nnfuzz.attribution import with_origin
from nnfuzz.errors import CorpusError, NnfuzzError, ReproducerError, UsageError, first_line
from nnfuzz.execution import Executor
from nnfuzz.objectives import Objective, context_for, rebuild, rebuild_key
from nnfuzz.objectives.disagree import same_signature
from nnfuzz.reproducer import Failure, load_failure
from nnfuzz.minimizer import minimize, reproduces, signature_check
from nnfuzz.target import Target
from nnfuzz.training.replay import is_training, retrain
from nnfuzz.training.shrink import minimize_trajectory


class Verdict(enum.Enum):
    STILL_FAILS = "still fails"
    FLAKY = "flaky"
    FIXED = "fixed"
    ERROR = "error"


#: Seeds run to check that instrumentation leaves the model's outputs alone (as the fuzz loop's
#: first batch does).
DEFAULT_BATCH = 100
#: How many times replay runs each reproducer by default: enough to tell a
#: flaky failure (nondeterministic kernels, a model that samples) from a steady one.
DEFAULT_REPEAT = 3


@dataclass(frozen=True)
class ReplayOutcome:
    path: Path
    verdict: Verdict
    detail: str
    objective: str = ""
    signature: str = ""
    #: Runs, and how many of them still failed with the recorded signature.
    runs: int = 0
    failed_runs: int = 0

    def line(self) -> str:
        return f"{self.path}: {self.verdict.value}: {self.detail}"


def replay_file(target: Target, path: Path, executor: Executor, objectives: "ObjectiveCache",
                repeat: int = DEFAULT_REPEAT) -> ReplayOutcome:
    """Re-run one reproducer ``repeat`` times and re-judge exactly its objective and signature."""
    try:
        loaded = load_failure(path)
        if is_training(loaded):
            return _replay_training(target, path, loaded, repeat)
        failure = _fitted(target, loaded)
        objective = objectives.get(failure)
    except (ReproducerError, CorpusError, UsageError) as error:
        return ReplayOutcome(path, Verdict.ERROR, str(error).removeprefix(f"{path}: "))
    known = _known(failure, repeat)
    still, other = [], []
    for _ in range(repeat):
        execution = executor.run(tuple(t.unsqueeze(0).to(executor.device) for t in failure.inputs))
        error = execution.raised[0] if execution.raised else None
        if error is not None and failure.objective != "exception":
            return ReplayOutcome(path, Verdict.ERROR, f"the model raised {error.describe()} on it: "
                                 f"cannot tell whether {failure.objective} still fires", **known)
        findings = objective.judge(execution.label_all(failure.label))
        still += [f.detail for f in findings if same_signature(failure.signature, f.signature)][:1]
        other += [f.detail for f in findings
                  if not same_signature(failure.signature, f.signature)][:1]
    if still:  # said as it is now, with where the NaN is made now
        still[0] = with_origin(replace(failure, detail=still[0]), target.model,
                               target.input_names, target.path).detail
    return _verdict(path, failure, repeat, still, other)


def _replay_training(target: Target, path: Path, failure: Failure,
                     repeat: int) -> ReplayOutcome:
    """A training reproducer: its trajectory re-trained ``repeat`` times from the starting
    weights, each step judged as the training engine judged it."""
    results = []
    for _ in range(repeat):
        try:
            results.append(retrain(target, failure))
        except (IndexError, RuntimeError) as error:
            return ReplayOutcome(path, Verdict.ERROR, "its trajectory no longer fits the target's "
                                 f"training data or model: {first_line(error)}",
                                 **_known(failure, repeat))
        except NnfuzzError as error:
            return ReplayOutcome(path, Verdict.ERROR, str(error), **_known(failure, repeat))
    broken = [b for b in results if b is not None]
    return _verdict(path, failure, repeat,
                    [b.detail for b in broken if b.signature == failure.signature],
                    [b.detail for b in broken if b.signature != failure.signature])


def _known(failure: Failure, repeat: int) -> dict[str, object]:
    return {"objective": failure.objective, "signature": failure.signature, "runs": repeat}


def _verdict(path: Path, failure: Failure, repeat: int, still: list[str],
             other: list[str]) -> ReplayOutcome:
    """The verdict on ``repeat`` runs of a reproducer, whichever engine found it: ``still``
    holds what each run that failed with its signature said, ``other`` what failed otherwise."""
    counts = {**_known(failure, repeat), "failed_runs": len(still)}
    if still:
        flaky = f"failed {len(still)} of {repeat} runs: " if len(still) < repeat else ""
        return ReplayOutcome(path, Verdict.STILL_FAILS if not flaky else Verdict.FLAKY,
                             f"{flaky}{failure.objective}: {still[0]}", **counts)
    now = f"; it now fails differently: {other[0]}" if other else ""
    return ReplayOutcome(path, Verdict.FIXED, f"{failure.objective} no longer fires as "
                                              f"{failure.signature!r} (was: {failure.detail}){now}",
                         **counts)


class ObjectiveCache:
    """The objective a reproducer names, rebuilt once per objective and metadata (the
    reference kind and tolerances of a disagreement, say)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.context = context_for(target, domain=target.domain() if target.seeds is not None
                                   else None)
        self._built: dict[tuple[str, ...], Objective] = {}

    def get(self, failure: Failure) -> Objective:
        key = rebuild_key(failure.objective, failure.metadata)
        if key not in self._built:
            self._built[key] = rebuild(failure.objective, failure.metadata, self.context,
                                       str(failure.path))
        return self._built[key]


def _fitted(target: Target, failure: Failure) -> Failure:
    """The failure with its inputs in the target's order; an error unless they have the
    structure of the target's seeds (when it has seeds)."""
    if target.seeds is None:
        return failure
    domain = target.domain()

    def arranged(inputs: tuple, what: str) -> tuple:
        batch = domain.arrange(tuple(t.unsqueeze(0) for t in inputs), failure.names, what)
        return tuple(t[0] for t in batch)

    return replace(failure, inputs=arranged(failure.inputs, "the reproducer's input"),
                   seed=arranged(failure.seed, "the reproducer's seed"), names=domain.names)


def _named_like(target: Target, paths: list[Path]) -> Target:
    """A target without seeds() takes its inputs' names from the reproducers."""
    if target.seeds is not None or target.input_names is not None:
        return target
    for path in paths:
        try:
            return replace(target, input_names=load_failure(path).names)
        except ReproducerError:
            continue
    return target


class Replayer:
    """One target's executor and objectives, shared by the reproducers replayed against it
    (``nnfuzz replay`` and the pytest plugin's replay items)."""

    def __init__(self, target: Target, paths: list[Path]) -> None:
        self.target = _named_like(target, paths)
        self.executor = _executor(self.target)
        self.objectives = ObjectiveCache(self.target)

    def replay(self, path: Path, repeat: int = DEFAULT_REPEAT) -> ReplayOutcome:
        return replay_file(self.target, path, self.executor, self.objectives, repeat)

    def close(self) -> None:
        self.executor.close()


def replay(target: Target, paths: list[Path], repeat: int = DEFAULT_REPEAT) -> list[ReplayOutcome]:
    replayer = Replayer(target, paths)
    try:
        return [replayer.replay(path, repeat) for path in paths]
    finally:
        replayer.close()


def _executor(target: Target) -> Executor:
    """An executor for the target, judging plainly where instrumenting changes its outputs
    (checked on the seeds, as the run that found the reproducers did)."""
    executor = Executor(target.model, source=target.path, names=target.input_names)
    if target.seeds is not None:
        executor.confirm_unobserved(tuple(t[:DEFAULT_BATCH].to(executor.device) for t in target.seeds))
    return executor


def exit_code(outcomes: list[ReplayOutcome]) -> int:
    """2 when a file could not be replayed, 1 when one still fails or is flaky, else 0."""
    verdicts = {outcome.verdict for outcome in outcomes}
    if Verdict.ERROR in verdicts:
        return NnfuzzError.exit_code
    return 1 if verdicts & {Verdict.STILL_FAILS, Verdict.FLAKY} else 0


def minimize_reproducer(target: Target, path: Path) -> tuple[Failure, Failure]:
    """The reproducer at ``path`` and its minimized copy (same objective and signature)."""
    failure = load_failure(path)
    if is_training(failure):  # its trajectory shrunk: fewer steps, moves, labels changed
        return failure, minimize_trajectory(target, failure)
    return failure, minimize_failure(_named_like(target, [path]), failure)


def minimize_failure(target: Target, failure: Failure) -> Failure:
    """``failure`` minimized against ``target``; an error if it no longer fails."""
    failure = _fitted(target, failure)
    replayer = Replayer(target, [])
    still_fails = signature_check(failure, replayer.objectives.get(failure), replayer.executor)
    try:
        if not reproduces(failure, still_fails):
            raise UsageError(f"{failure.path or 'the failure'}: it no longer fails as "
                             f"{failure.signature!r}: nothing to minimize (replay it to see what "
                             "it does now).")
        return minimize(failure, still_fails, target.domain() if target.seeds is not None else None)
    finally:
        replayer.close()
