"""Score and surviving mutants of tools/mutation.sh sessions: killed / (killed + survived),
mutants filtered out (operators, '# pragma: no mutate') not counted, and survivors listed as
equivalent in tools/mutation_equivalent.toml (with the reason) not counted either: an
equivalent mutant cannot change behaviour, so no test can kill it.

    python tools/mutation_report.py [/tmp/lungsam-mutation] [--diffs] [--equivalent FILE]

An entry names module, operator, occurrence *and* line, because cosmic-ray numbers
occurrences per operator over the file: after the module changes (FRESH=1 re-run) a stale
entry must stop matching rather than excuse a different mutant. Stale entries and listed
mutants that a test kills are reported, so the list stays honest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT_EQUIVALENT = Path(__file__).with_name("mutation_equivalent.toml")

Key = tuple[str, str, int]  # module path, operator, occurrence


def load_equivalents(path: Path) -> dict[Key, dict[str, Any]]:
    """``[[mutant]]`` tables (module, operator, occurrence, line, reason) keyed for lookup;
    a missing file means no equivalents."""
    if not path.is_file():
        return {}
    entries = tomllib.loads(path.read_text())["mutant"]
    out = {}
    for e in entries:
        missing = {"module", "operator", "occurrence", "line", "reason"} - set(e)
        if missing or not str(e.get("reason", "")).strip():
            raise ValueError(f"{path}: entry {e} needs {sorted(missing) or ['a reason']}")
        out[(e["module"], e["operator"], int(e["occurrence"]))] = e
    return out


@dataclass
class Tally:
    """One session's counts; ``survivors`` excludes the equivalent ones."""

    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    pending: int = 0
    #: mutants cosmic-ray could not apply (its own exception, e.g. ExceptionReplacer on a
    #: dotted name such as ``re.error``): never tested, so neither killed nor survived
    errors: int = 0
    #: left out of a MUTATION_SAMPLE run (not chosen by the seeded sample)
    not_sampled: int = 0
    #: killed only by running past MUTATION_TIMEOUT: on a loaded machine a survivor can, so
    #: they are counted apart and named
    timeouts: int = 0
    survivors: list[tuple[dict, dict]] = field(default_factory=list)
    equivalents: list[tuple[dict, dict[str, Any]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        """Killed share of the non-equivalent mutants that ran, in percent."""
        done = self.killed + self.survived
        return 100 * self.killed / done if done else None


def _where(m: dict) -> str:
    return f"{m['module_path']}:{m['start_pos'][0]} {m['operator_name']} #{m['occurrence']}"


def tally(records: list[tuple[dict, dict | None]], equivalents: dict[Key, dict[str, Any]]) -> Tally:
    """Count ``cosmic-ray dump`` records (work item, result or None when pending)."""
    t = Tally()
    for item, result in records:
        if result is None:
            t.pending += 1
            continue
        if result.get("worker_outcome") == "skipped":
            t.not_sampled += result.get("output") == "not sampled"
            continue
        m = item["mutations"][0]
        if result.get("worker_outcome") == "exception":
            t.errors += 1
            t.warnings.append(f"cosmic-ray could not apply it, not tested: {_where(m)}")
            continue
        entry = equivalents.get((m["module_path"], m["operator_name"], int(m["occurrence"])))
        if entry is not None and int(entry["line"]) != m["start_pos"][0]:
            t.warnings.append(f"stale equivalent entry (line {entry['line']}): {_where(m)}")
            entry = None
        if result.get("test_outcome") == "survived":
            if entry is not None:
                t.equivalent += 1
                t.equivalents.append((item, entry))
            else:
                t.survived += 1
                t.survivors.append((item, result))
        else:  # killed, or incompetent (the mutant ran but cannot even import, or timed out)
            t.killed += 1
            if result.get("worker_outcome") == "timeout":
                t.timeouts += 1
                t.warnings.append(f"killed by the time limit only: {_where(m)}")
            if entry is not None:
                t.warnings.append(f"listed as equivalent but a test kills it: {_where(m)}")
    return t


def session(db: Path) -> list[tuple[dict, dict | None]]:
    out = subprocess.run(
        ["cosmic-ray", "dump", str(db)], capture_output=True, text=True, check=True
    )
    return [tuple(json.loads(line)) for line in out.stdout.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    args, diffs, equivalent_file = [], False, DEFAULT_EQUIVALENT
    it = iter(argv)
    for a in it:
        if a == "--diffs":
            diffs = True
        elif a == "--equivalent":
            equivalent_file = Path(next(it))
        else:
            args.append(a)
    work = Path(args[0] if args else "/tmp/lungsam-mutation")
    equivalents = load_equivalents(equivalent_file)
    print(
        f"{'module':40s} {'killed':>6s} {'surv.':>5s} {'equiv.':>6s} {'pending':>7s} {'score':>6s}"
        "  (unsampled)"
    )
    for db in sorted(work.glob("*.sqlite")):
        t = tally(session(db), equivalents)
        score = f"{t.score:5.1f}%" if t.score is not None else "  -  "
        print(
            f"{db.stem.removesuffix('.py'):40s} {t.killed:6d} {t.survived:5d} {t.equivalent:6d} "
            f"{t.pending:7d} {score:>6s}" + (f"  ({t.not_sampled})" if t.not_sampled else "")
        )
        for item, result in t.survivors:
            print(f"    survived: {_where(item['mutations'][0])}")
            if diffs:
                print("      " + (result.get("diff") or "").replace("\n", "\n      "))
        for item, entry in t.equivalents:
            print(f"    equivalent: {_where(item['mutations'][0])}: {entry['reason']}")
        for w in t.warnings:
            print(f"    WARNING {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
