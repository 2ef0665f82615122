"""nnfuzz report's nights (issue #28, item 4): a folder kept across nights tells its story —
executions per night, failures first seen, fixed by a replay, still failing — and --since.

Runs record their start from the wall clock and nothing injects another, so the nights are
simulated the honest way: after each real command, the time it recorded (run.json's
``start_time`` of its run, replays.json's ``time`` of its replay) is rewritten to the night
it stands for, before the next command reads the folder.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from nnfuzz.history import REPLAYS, nights, record_verdicts
from nnfuzz.replay import ReplayOutcome, Verdict
from tests.targets import DEAD_RELU, write_target

from .support import assert_one_error_line, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The fix: an epsilon in the standard deviation (as tests/integration/test_nightly.py).
FIXED = DEAD_RELU.replace("/ h.std(1, keepdim=True)", "/ (h.std(1, keepdim=True) + 1e-6)")
SIGNATURE = "nonfinite:head"


def _date_last_run(out: Path, when: str) -> None:
    record = json.loads((out / "run.json").read_text())
    record["runs"][-1]["start_time"] = record["start_time"] = when
    (out / "run.json").write_text(json.dumps(record))


def _date_last_replay(out: Path, when: str) -> None:
    replays = json.loads((out / REPLAYS).read_text())
    replays[-1]["time"] = when
    (out / REPLAYS).write_text(json.dumps(replays))


def _run(target: Path, out: Path, runs: int, seed: int, when: str, code: int) -> None:
    result = invoke("run", target, "--out", out, "--runs", runs, "--seed", seed)
    assert result.exit_code == code, result.output
    _date_last_run(out, when)


def _replay(target: Path, out: Path, when: str, code: int) -> None:
    result = invoke("replay", target, out / "crashes", "--repeat", 1)
    assert result.exit_code == code, result.output
    _date_last_replay(out, when)


@pytest.fixture(scope="module")
def four_nights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Night 1 finds the NaN; night 2 replays it (still fails) and runs; night 3 the fix:
    replay says fixed, two runs; night 4 only replays it, fixed again. ``one`` is the
    folder as it was after night 1."""
    folder = tmp_path_factory.mktemp("nights")
    target, out = write_target(folder, DEAD_RELU), folder / "out"
    _run(target, out, 3000, 1, "2026-12-01T02:00:00+00:00", code=1)
    shutil.copytree(out, folder / "one")
    _replay(target, out, "2026-12-02T01:00:00+00:00", code=1)
    _run(target, out, 500, 2, "2026-12-02T02:00:00+00:00", code=0)
    target.write_text(FIXED)
    _replay(target, out, "2026-12-03T01:00:00+00:00", code=0)
    _run(target, out, 500, 3, "2026-12-03T02:00:00+00:00", code=0)
    _run(target, out, 700, 4, "2026-12-03T14:00:00+00:00", code=0)
    _replay(target, out, "2026-12-04T01:00:00+00:00", code=0)
    return {"out": out, "one": folder / "one"}


def _rows(output: str) -> list[list[str]]:
    """The night table's rows, as their columns."""
    lines = output.splitlines()
    start = lines.index("nights (by start date, UTC):") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("  20"):
            break
        rows.append(line.split())
    return rows


def test_each_night_sums_its_runs_counts_a_failure_new_once_and_fixed_the_night_replay_said_so(
        four_nights: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("report", four_nights["out"], "--no-png")
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == [
        # night      runs  execs   new fixed still failing
        ["2026-12-01", "1", "3,000", "1", "0", "1"],
        ["2026-12-02", "1", "500", "0", "0", "1"],   # replayed: still fails
        ["2026-12-03", "2", "1,200", "0", "1", "0"],  # the fix: replay says fixed
        ["2026-12-04", "0", "0", "0", "0", "0"],     # fixed again is not fixed twice
    ]


def test_since_keeps_the_nights_and_runs_from_then_and_a_failure_stays_as_new_as_it_was(
        four_nights: dict[str, Path]) -> None:
    result = invoke("report", four_nights["out"], "--no-png", "--since", "2026-12-02")
    assert result.exit_code == 0, result.output
    assert [row[0] for row in _rows(result.output)] == ["2026-12-02", "2026-12-03", "2026-12-04"]
    assert sum(int(row[3]) for row in _rows(result.output)) == 0, "first seen on 12-01"
    assert "runs since 2026-12-02T00:00:00+00:00: 3 of 4" in result.output
    assert "  1. " not in result.output and "  4. 2026-12-03T14:00:00+00:00" in result.output
    later = invoke("report", four_nights["out"], "--no-png", "--since", "2026-12-03T12:00")
    assert _rows(later.output) == [["2026-12-03", "1", "700", "0", "0", "0"],
                                   ["2026-12-04", "0", "0", "0", "0", "0"]]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "2026-12-01T25:00", ""])
def test_a_since_that_is_not_a_date_is_one_error_line(four_nights: dict[str, Path],
                                                      since: str) -> None:
    assert_one_error_line(invoke("report", four_nights["out"], "--since", since),
                          f"--since {since!r} is not a date", "2026-12-01")


def test_the_json_has_one_record_per_night_with_counts_and_signatures(
        four_nights: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert invoke("report", four_nights["out"], "--no-png", "--since", "2026-12-02",
                  "--json", path).exit_code == 0
    record = json.loads(path.read_text())
    assert record["since"] == "2026-12-02T00:00:00+00:00"
    assert [run["number"] for run in record["runs"]] == [2, 3, 4]
    assert record["nights"][1] == {
        "night": "2026-12-03", "runs": 2, "execs": 1200, "new_failures": 0, "fixed": 1,
        "still_failing": 0, "signatures": {"new": [], "fixed": [SIGNATURE], "still_failing": []}}
    assert [n["still_failing"] for n in record["nights"]] == [1, 0, 0]


def test_the_nights_plot_is_a_png_beside_the_report_plot(four_nights: dict[str, Path],
                                                        tmp_path: Path) -> None:
    result = invoke("report", four_nights["out"], "--png", tmp_path / "plot.png")
    assert result.exit_code == 0, result.output
    assert f"plot: {tmp_path / 'plot-nights.png'}" in result.output
    assert (tmp_path / "plot-nights.png").read_bytes().startswith(PNG_MAGIC)


def test_a_folder_of_one_run_has_a_one_row_night_table(four_nights: dict[str, Path]) -> None:
    result = invoke("report", four_nights["one"], "--no-png")
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == [["2026-12-01", "1", "3,000", "1", "0", "1"]]
    assert not (four_nights["one"] / REPLAYS).exists()


def test_replay_keeps_every_verdict_in_the_folder_as_json_and_leaves_no_temporary_file(
        four_nights: dict[str, Path]) -> None:
    out = four_nights["out"]
    replays = json.loads((out / REPLAYS).read_text())
    assert [[v["verdict"] for v in r["verdicts"]] for r in replays] == [
        ["still fails"], ["fixed"], ["fixed"]]
    assert {v["signature"] for r in replays for v in r["verdicts"]} == {SIGNATURE}
    assert not list(out.glob(".tmp-*"))


def _outcome(path: Path, verdict: Verdict = Verdict.FIXED) -> ReplayOutcome:
    return ReplayOutcome(path, verdict, "", objective="nonfinite", signature=SIGNATURE, runs=1)


def test_verdicts_on_reproducers_outside_an_output_folder_are_not_recorded(tmp_path: Path) -> None:
    (tmp_path / "crashes").mkdir()  # a crashes/ without run.json beside it
    assert record_verdicts([_outcome(tmp_path / "a.safetensors"),
                            _outcome(tmp_path / "crashes" / "b.safetensors")]) == []
    assert not list(tmp_path.rglob(REPLAYS))


def test_a_folder_that_cannot_be_written_is_a_warning_not_a_lost_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfuzz import history
    from nnfuzz.errors import OutputError

    (tmp_path / "crashes").mkdir()
    (tmp_path / "run.json").write_text("{}")

    def refuse(path: Path, data: bytes) -> None:
        raise OutputError(f"cannot write {path}: read-only file system.")

    monkeypatch.setattr(history, "atomic_write", refuse)
    with pytest.warns(UserWarning, match="nnfuzz report will not count them"):
        assert record_verdicts([_outcome(tmp_path / "crashes" / "a.safetensors")]) == []


# --- the grouping, on made-up histories ----------------------------------------------------

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
runs_strategy = st.lists(st.fixed_dictionaries({
    "minute": st.integers(0, 6 * 24 * 60), "execs": st.integers(0, 10**6),
    "hits": st.sets(st.sampled_from("abc"))}), max_size=12)


def _entries(made: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"start_time": (START + timedelta(minutes=m["minute"])).isoformat(),
             "execs": m["execs"], "hits": {s: 1 for s in m["hits"]}} for m in made]


@settings(max_examples=100, deadline=None)
@given(made=runs_strategy, since_day=st.none() | st.integers(0, 7))
def test_nights_sum_the_executions_of_the_runs_since_and_count_each_failure_new_once(
        made: list[dict[str, Any]], since_day: int | None) -> None:
    since = None if since_day is None else START + timedelta(days=since_day)
    rows = nights(_entries(made), [], since)  # type: ignore[arg-type]
    shown = [m for m in made if since is None or START + timedelta(minutes=m["minute"]) >= since]
    assert sum(row.execs for row in rows) == sum(m["execs"] for m in shown)
    assert sum(row.runs for row in rows) == len(shown)
    assert [row.night for row in rows] == sorted({row.night for row in rows})
    first_seen: dict[str, int] = {}
    for m in sorted(made, key=lambda m: m["minute"]):
        for signature in m["hits"]:
            first_seen.setdefault(signature, m["minute"])
    new = [s for row in rows for s in row.new]
    assert sorted(new) == sorted(s for s, minute in first_seen.items()
                                 if since is None or START + timedelta(minutes=minute) >= since)


def test_a_failure_found_again_after_its_fix_is_failing_again_and_can_be_fixed_again() -> None:
    runs = _entries([{"minute": 60, "execs": 1, "hits": {"a"}},
                     {"minute": 2 * 1440 + 60, "execs": 1, "hits": {"a"}}])
    fixed = [{"time": (START + timedelta(days=day)).isoformat(),
              "verdicts": [{"signature": "a", "verdict": "fixed"}]} for day in (1, 3)]
    rows = nights(runs, fixed)  # type: ignore[arg-type]
    assert [(len(r.new), len(r.fixed), len(r.still_failing)) for r in rows] == [
        (1, 0, 1), (0, 1, 0), (0, 0, 1), (0, 1, 0)]
