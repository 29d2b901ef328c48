"""tools/mutation_report.py: equivalent mutants leave the score, stale or killed entries warn."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutation_report", ROOT / "tools/mutation_report.py")
report = importlib.util.module_from_spec(_spec)
sys.modules["mutation_report"] = report  # dataclasses look their module up there
_spec.loader.exec_module(report)


def record(op: str, occurrence: int, line: int, outcome: str | None) -> tuple[dict, dict | None]:
    """One ``cosmic-ray dump`` line: the work item and its result (None: pending)."""
    item = {
        "mutations": [
            {
                "module_path": "m.py",
                "operator_name": op,
                "occurrence": occurrence,
                "start_pos": [line, 4],
            }
        ]
    }
    if outcome is None:
        return item, None
    if outcome == "skipped":
        return item, {"worker_outcome": "skipped", "test_outcome": None}
    return item, {"worker_outcome": "normal", "test_outcome": outcome, "diff": "-a\n+b"}


EQUIV = {("m.py", "core/X", 0): {"line": 10, "reason": "cannot differ"}}


def test_equivalent_survivor_leaves_the_score() -> None:
    records = [record("core/X", 0, 10, "survived"), record("core/Y", 0, 3, "survived")]
    records += [record("core/Z", i, 5, "killed") for i in range(3)]
    records += [record("core/Z", 9, 5, None), record("core/W", 0, 5, "skipped")]
    t = report.tally(records, EQUIV)
    assert (t.killed, t.survived, t.equivalent, t.pending) == (3, 1, 1, 1)
    assert t.score == pytest.approx(75.0)  # 3 / (3 + 1): the equivalent one not counted
    assert [i["mutations"][0]["operator_name"] for i, _ in t.survivors] == ["core/Y"]
    assert not t.warnings
    assert report.tally(records, {}).score == pytest.approx(60.0)  # 3 / (3 + 2)


def test_mutant_cosmic_ray_could_not_apply_is_neither_killed_nor_survived() -> None:
    # worker_outcome "exception": the tool failed before any test ran (test_outcome is
    # "incompetent" then too, which must not count as a kill)
    item, _ = record("core/ExceptionReplacer", 1, 7, None)
    failed = (item, {"worker_outcome": "exception", "test_outcome": "incompetent"})
    t = report.tally([failed, record("core/Z", 0, 5, "killed")], {})
    assert (t.killed, t.survived, t.errors, t.score) == (1, 0, 1, 100.0)
    assert t.warnings and "not tested" in t.warnings[0]


def test_entry_whose_line_moved_excuses_nothing_and_warns() -> None:
    t = report.tally([record("core/X", 0, 11, "survived")], EQUIV)
    assert (t.survived, t.equivalent) == (1, 0)
    assert t.warnings and "stale" in t.warnings[0]


def test_listed_mutant_that_a_test_kills_counts_killed_and_warns() -> None:
    t = report.tally([record("core/X", 0, 10, "killed")], EQUIV)
    assert (t.killed, t.equivalent, t.score) == (1, 0, 100.0)
    assert t.warnings and "kills it" in t.warnings[0]


def test_entry_without_reason_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "eq.toml"
    bad.write_text('[[mutant]]\nmodule = "m.py"\noperator = "core/X"\noccurrence = 0\nline = 1\n')
    with pytest.raises(ValueError, match="reason"):
        report.load_equivalents(bad)
    assert report.load_equivalents(tmp_path / "absent.toml") == {}


def test_committed_equivalents_point_at_their_lines_in_the_current_source() -> None:
    entries = report.load_equivalents(report.DEFAULT_EQUIVALENT)
    assert entries
    for (module, _op, _occ), e in entries.items():
        lines = (ROOT / module).read_text().splitlines()
        assert lines[e["line"] - 1].strip() == e["original"], (module, e["line"])


def test_unsampled_and_timed_out_mutants_are_counted_apart() -> None:
    item, _ = record("core/Z", 1, 5, None)
    unsampled = (item, {"worker_outcome": "skipped", "output": "not sampled", "test_outcome": None})
    timed_out = (item, {"worker_outcome": "timeout", "test_outcome": "killed"})
    records = [unsampled, timed_out, record("core/W", 0, 5, "skipped"), record("core/Z", 0, 5, "killed")]
    t = report.tally(records, {})
    assert (t.killed, t.not_sampled, t.timeouts, t.pending) == (2, 1, 1, 0)
    assert any("time limit" in w for w in t.warnings)


def _session(path: Path, jobs: int, filtered: int) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE work_items (job_id VARCHAR PRIMARY KEY)")
        db.execute("CREATE TABLE work_results (worker_outcome VARCHAR, output TEXT, "
                   "test_outcome VARCHAR, diff TEXT, job_id VARCHAR PRIMARY KEY)")
        db.executemany("INSERT INTO work_items VALUES (?)", [(f"j{i:03d}",) for i in range(jobs)])
        db.executemany("INSERT INTO work_results VALUES ('SKIPPED', 'Filtered operator', NULL, NULL, ?)",
                       [(f"j{i:03d}",) for i in range(filtered)])


def _pending(path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        done = {r[0] for r in db.execute("SELECT job_id FROM work_results")}
        return {r[0] for r in db.execute("SELECT job_id FROM work_items")} - done


def test_a_sample_is_seeded_leaves_filtered_mutants_alone_and_grows(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("mutation_sample", ROOT / "tools/mutation_sample.py")
    sampler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sampler)
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    _session(a, 50, 10)
    _session(b, 50, 10)
    assert sampler.sample(str(a), 15, seed=3) == (15, 40)
    first = _pending(a)
    assert len(first) == 15 and not first & {f"j{i:03d}" for i in range(10)}  # never a filtered one
    sampler.sample(str(b), 15, seed=3)
    assert _pending(b) == first  # same seed, same mutants
    sampler.sample(str(a), 25, seed=3)
    assert len(_pending(a)) == 25 and first <= _pending(a)  # a larger sample only adds
    sampler.sample(str(b), 15, seed=4)
    assert _pending(b) != first
