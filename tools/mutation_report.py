"""Score and surviving mutants of tools/mutation.sh sessions: killed / (killed + survived),
mutants filtered out (operators, '# pragma: no mutate') not counted.

    python tools/mutation_report.py [/tmp/lungsam-mutation] [--diffs]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def session(db: Path) -> list[tuple[dict, dict | None]]:
    out = subprocess.run(["cosmic-ray", "dump", str(db)], capture_output=True, text=True, check=True)
    return [tuple(json.loads(line)) for line in out.stdout.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    work = Path(args[0] if args else "/tmp/lungsam-mutation")
    diffs = "--diffs" in argv
    print(f"{'module':40s} {'killed':>6s} {'surv.':>5s} {'pending':>7s} {'score':>6s}")
    for db in sorted(work.glob("*.sqlite")):
        killed = survived = pending = 0
        survivors = []
        for item, result in session(db):
            if result is None:
                pending += 1
                continue
            if result.get("worker_outcome") == "skipped":
                continue
            if result.get("test_outcome") == "survived":
                survived += 1
                survivors.append((item, result))
            else:  # killed, or incompetent (the mutant cannot even import)
                killed += 1
        done = killed + survived
        score = f"{100 * killed / done:5.1f}%" if done else "  -  "
        print(f"{db.stem.removesuffix('.py'):40s} {killed:6d} {survived:5d} {pending:7d} {score:>6s}")
        for item, result in survivors:
            m = item["mutations"][0]
            line = m["start_pos"][0]
            print(f"    survived: {m['module_path']}:{line} {m['operator_name']} #{m['occurrence']}")
            if diffs:
                print("      " + (result.get("diff") or "").replace("\n", "\n      "))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
