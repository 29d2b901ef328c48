"""Split v7_covid_ieee8023 by patient into the train / val sets of the "anatomical" style.

The V7 lung polygons follow the anatomical convention (retrocardiac lung and posterior
recesses included, opacified lung included), like covid_chestxray_gb's radiologists, so
they teach that style; gb stays its unseen test. Patients (``patientid`` in manifest.csv)
never straddle the split: a patient goes to val when sha256(patientid) mod 5 == 0 (about a
fifth), so the split does not depend on file order. Folders of symbolic links, as
``tools/gb_style_sets.py`` writes them.

    python tools/v7_style_sets.py --data ../shared/data --out RUNS/v7-style
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.gb_style_sets import link_set


def part_of(patient: str) -> str:
    return "val" if int(hashlib.sha256(patient.encode()).hexdigest(), 16) % 5 == 0 else "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="../shared/data")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    v7 = args.data / "v7_covid_ieee8023"
    with open(v7 / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for part in ("train", "val"):
        names = sorted(r["file"] for r in rows if part_of(r["patientid"].strip()) == part
                       and (v7 / "images" / r["file"]).is_file())
        patients = len({r["patientid"] for r in rows if r["file"] in names})
        print(f"{part}: {link_set(v7, names, args.out / part)} images of {patients} patients -> {args.out / part}")


if __name__ == "__main__":
    main()
