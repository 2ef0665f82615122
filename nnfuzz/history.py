"""The nights of an output folder: what a folder kept across nights did, night by night.

A night is the calendar date a run started, as run.json records its ``start_time`` (nnfuzz
writes UTC), or the date a ``nnfuzz replay`` of the folder's reproducers ran. Each night
says how many executions its runs made, which failures were first seen (a signature no
earlier run of the folder hit), which were fixed (a replay that night said ``fixed`` of a
failure that was failing until then), and how many still fail at its end. Replays record
their verdicts in ``OUT/replays.json`` (:func:`record_verdicts`), so that ``nnfuzz report``
can tell the night a bug was fixed without a tracker.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from nnfuzz.errors import OutputError, UsageError
from nnfuzz.run_record import RunEntry
from nnfuzz.storage import atomic_write
from nnfuzz.version import __version__

if TYPE_CHECKING:
    from nnfuzz.replay import ReplayOutcome

#: The file in an output folder that keeps every replay's verdicts on its reproducers.
REPLAYS = "replays.json"
#: Verdicts that say the failure is still there (``error`` says nothing either way).
FAILING = ("still fails", "flaky")
FIXED = "fixed"


@dataclass(frozen=True)
class Night:
    """One night of the folder: its runs' executions and what happened to its failures."""

    night: date
    runs: int = 0
    execs: int = 0
    new: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    #: Failures seen up to this night whose last word (a run's hit, a replay) is a failure.
    still_failing: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {"night": self.night.isoformat(), "runs": self.runs, "execs": self.execs,
                "new_failures": len(self.new), "fixed": len(self.fixed),
                "still_failing": len(self.still_failing),
                "signatures": {"new": list(self.new), "fixed": list(self.fixed),
                               "still_failing": list(self.still_failing)}}


# --- when --------------------------------------------------------------------------------

def moment(text: object) -> datetime | None:
    """A recorded ISO time as an aware datetime (a time without an offset is UTC); None if
    it is not one."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def parse_since(text: str | None) -> datetime | None:
    """``--since``: an ISO date (from its midnight, UTC) or date and time (UTC unless it
    gives an offset); a UsageError naming the option otherwise."""
    if text is None:
        return None
    when = moment(text.strip())
    if when is None:
        raise UsageError(f"--since {text!r} is not a date: give an ISO date such as 2026-12-01, "
                         "or a date and time such as 2026-12-01T06:00 (UTC).")
    return when


# --- the record of replays ----------------------------------------------------------------

def output_folder_of(reproducer: Path) -> Path | None:
    """The output folder whose crashes/ holds ``reproducer`` (run.json beside it), or None."""
    crashes = reproducer.parent
    if crashes.name == "crashes" and (crashes.parent / "run.json").is_file():
        return crashes.parent
    return None


def read_replays(folder: Path) -> list[dict[str, Any]]:
    """The replays recorded in ``folder``, oldest first; none when the file is absent or
    unreadable (a report still comes, without fixes)."""
    try:
        replays = json.loads((folder / REPLAYS).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in replays if isinstance(r, dict)] if isinstance(replays, list) else []


def record_verdicts(outcomes: Iterable["ReplayOutcome"], now: datetime | None = None) -> list[Path]:
    """Add one replay's verdicts to ``replays.json`` of each output folder whose crashes/
    held a reproducer replayed (temp file, then rename). A folder that cannot be written is
    a warning: the verdicts were said, only the history misses them."""
    by_folder: dict[Path, list[dict[str, str]]] = defaultdict(list)
    for outcome in outcomes:
        folder = output_folder_of(outcome.path)
        if folder is not None and outcome.signature:
            by_folder[folder].append({"file": outcome.path.name, "objective": outcome.objective,
                                      "signature": outcome.signature,
                                      "verdict": outcome.verdict.value})
    when = (now or datetime.now(timezone.utc)).isoformat()
    written = []
    for folder, verdicts in by_folder.items():
        replays = [*read_replays(folder), {"time": when, "nnfuzz": __version__,
                                           "verdicts": verdicts}]
        try:
            atomic_write(folder / REPLAYS, (json.dumps(replays, indent=1) + "\n").encode())
        except OutputError as error:
            warnings.warn(f"{error} The verdicts are not in the folder's history: nnfuzz report "
                          "will not count them.", stacklevel=2)
            continue
        written.append(folder / REPLAYS)
    return written


# --- nights ----------------------------------------------------------------------------------

@dataclass
class _Tally:
    runs: int = 0
    execs: int = 0
    new: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)


def _events(runs: list[RunEntry], replays: list[dict[str, Any]]) -> list[tuple[datetime, int, Any]]:
    """Runs (kind 0) and replays (kind 1) in the order they happened; undated ones are left out."""
    events: list[tuple[datetime, int, Any]] = []
    for run in runs:
        when = moment(run.get("start_time"))
        if when is not None:
            events.append((when, 0, run))
    for replay in replays:
        when = moment(replay.get("time"))
        if when is not None:
            events.append((when, 1, replay))
    return sorted(events, key=lambda event: (event[0], event[1]))


def nights(runs: list[RunEntry], replays: list[dict[str, Any]],
           since: datetime | None = None) -> list[Night]:
    """The folder's nights, oldest first; with ``since``, only the runs and replays from then
    on (a failure is new on the night first seen in the whole folder, earlier nights included)."""
    failing: dict[str, bool] = {}  # every signature seen so far: is it failing now?
    tallies: dict[date, _Tally] = {}
    ends: dict[date, tuple[str, ...]] = {}
    for when, kind, event in _events(runs, replays):
        shown = since is None or when >= since
        tally = tallies.setdefault(when.date(), _Tally()) if shown else _Tally()
        if kind == 0:
            tally.runs += 1
            tally.execs += int(event.get("execs") or 0)
            for signature in sorted(event.get("hits") or {}):
                if signature not in failing:
                    tally.new.append(signature)
                failing[signature] = True
        else:
            for verdict in event.get("verdicts") or []:
                signature = str(verdict.get("signature") or "")
                if not signature or verdict.get("verdict") not in (*FAILING, FIXED):
                    continue
                is_fixed = verdict.get("verdict") == FIXED
                if is_fixed and failing.get(signature, True) and signature not in tally.fixed:
                    tally.fixed.append(signature)
                failing[signature] = not is_fixed
        if shown:
            ends[when.date()] = tuple(sorted(s for s, now in failing.items() if now))
    return [Night(night, t.runs, t.execs, tuple(t.new), tuple(t.fixed), ends[night])
            for night, t in sorted(tallies.items())]


def table(rows: list[Night]) -> list[str]:
    """The nights as lines of text, one row per night."""
    lines = ["nights (by start date, UTC):",
             f"  {'night':<10}  {'runs':>4}  {'execs':>12}  {'new':>4}  {'fixed':>5}  still failing"]
    for row in rows:
        lines.append(f"  {row.night.isoformat():<10}  {row.runs:>4}  {row.execs:>12,}  "
                     f"{len(row.new):>4}  {len(row.fixed):>5}  {len(row.still_failing):>13}")
    if not rows:
        lines.append("  (no run or replay in this period)")
    return lines


def figure_of(rows: list[Night], title: str, plt: Any) -> Any:
    """Failures found and fixed each night (bars) and still failing at its end (line)."""
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(8, 3.5))
    places = list(range(len(rows)))
    axis.bar([p - 0.2 for p in places], [len(r.new) for r in rows], width=0.4,
             color="tab:red", label="new failures")
    axis.bar([p + 0.2 for p in places], [len(r.fixed) for r in rows], width=0.4,
             color="tab:green", label="fixed")
    # Points as well as a line: a folder of one night has one point.
    axis.plot(places, [len(r.still_failing) for r in rows], color="black", marker="o",
              markersize=4, label="still failing")
    axis.set_xticks(places, [r.night.isoformat() for r in rows],
                    rotation=45 if len(rows) > 8 else 0, ha="right" if len(rows) > 8 else "center")
    # At least three nights wide, so that one night's bars are bars, not the whole plot.
    pad = max(0.75, (3 - len(rows)) / 2)
    axis.set_xlim(-pad, len(rows) - 1 + pad)
    top = max([1, *(max(len(r.new), len(r.fixed), len(r.still_failing)) for r in rows)])
    axis.set_ylim(0, top + 0.5)
    axis.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    axis.set_ylabel("failures")
    axis.set_xlabel("night (UTC)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
    axis.set_title(f"{title}: {len(rows)} night(s)")
    figure.tight_layout()
    return figure
