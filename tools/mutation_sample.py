"""Keep a seeded random sample of a cosmic-ray session's mutants; mark the rest 'not sampled'.

    python tools/mutation_sample.py SESSION.sqlite N [SEED]

Why: a module whose tests train small models (trainer/training/loop.py: 302 mutants, 30-100 s
each on 2 shared cores) cannot have every mutant run in a working session. A uniform random
sample estimates the score without bias; the report counts the left-out mutants apart, so a
sampled score never reads as a complete one. The sample is drawn from every mutant the filters
kept, done or not, in job-id order: the same N and seed choose the same mutants on every run
(results already there are kept), and a larger N only adds mutants.
"""

from __future__ import annotations

import random
import sqlite3
import sys

NOT_SAMPLED = "not sampled"


def sample(path: str, n: int, seed: int = 0) -> tuple[int, int]:
    """Mark all but ``n`` seeded-random kept mutants as skipped; returns (sampled, kept)."""
    with sqlite3.connect(path) as db:
        filtered = {r[0] for r in db.execute(
            "SELECT job_id FROM work_results WHERE worker_outcome = 'SKIPPED' AND output != ?",
            (NOT_SAMPLED,))}
        jobs = sorted(r[0] for r in db.execute("SELECT job_id FROM work_items") if r[0] not in filtered)
        random.Random(seed).shuffle(jobs)  # the first n of one seeded order: a larger n only adds
        chosen = set(jobs[:n])
        db.execute("DELETE FROM work_results WHERE output = ?", (NOT_SAMPLED,))
        done = {r[0] for r in db.execute("SELECT job_id FROM work_results")}
        db.executemany(
            "INSERT INTO work_results (worker_outcome, output, test_outcome, diff, job_id) "
            "VALUES ('SKIPPED', ?, NULL, NULL, ?)",
            [(NOT_SAMPLED, j) for j in jobs if j not in chosen and j not in done])
    return len(chosen), len(jobs)


if __name__ == "__main__":
    taken, kept = sample(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    print(f"sample: {taken} of {kept} mutants")
