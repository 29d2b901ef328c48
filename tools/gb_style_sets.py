"""Split covid_chestxray_gb into the sets the shipped model's "anatomical" mask style uses.

covid_chestxray_gb's radiologists draw the lung behind the heart and down to the posterior
costophrenic recesses; COVID-QU-Ex does not. The shipped model learns that second
convention as its own output token from the gb images that are NOT its unseen test set:

- test  (44): rows of overlap_with_covidqu_ex.csv with thumb_corr < 0.95 - never trained on;
- train (40): near-duplicates (thumb_corr >= 0.95) whose twin is not in our COVID-QU-Ex copy;
- val   (14): near-duplicates whose twin is in our COVID-QU-Ex copy (mostly its val split).

Each set is a folder of symbolic links (images/, masks/, masks_left/, masks_right/), so the
trainer and ``lungsam eval`` read them like any data folder and nothing is copied.

    python tools/gb_style_sets.py --data ../shared/data --out RUNS/gb-style
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.training import OVERLAP_MIN_CORR

MASK_DIRS = ("masks", "masks_left", "masks_right")


def assign(rows: list[dict[str, str]]) -> dict[str, str]:
    """gb image name -> "train" / "val" / "test"."""
    out = {}
    for row in rows:
        if float(row["thumb_corr"]) < OVERLAP_MIN_CORR:
            out[row["gb_image"]] = "test"
        elif row["match_in_extracted_covidqu_ex_subset"].strip().lower() == "true":
            out[row["gb_image"]] = "val"
        else:
            out[row["gb_image"]] = "train"
    return out


def link_set(gb: Path, names: list[str], dest: Path) -> int:
    for sub in ("images", *MASK_DIRS):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        image = gb / "images" / name
        links = [(image, dest / "images" / name)]
        for sub in MASK_DIRS:
            mask = gb / sub / (Path(name).stem + ".png")
            if mask.is_file():
                links.append((mask, dest / sub / mask.name))
        for src, dst in links:
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            dst.symlink_to(src.resolve())
    return len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="../shared/data")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    gb = args.data / "covid_chestxray_gb"
    with open(gb / "overlap_with_covidqu_ex.csv", newline="", encoding="utf-8") as handle:
        split = assign(list(csv.DictReader(handle)))
    for part in ("train", "val", "test"):
        names = sorted(n for n, p in split.items() if p == part and (gb / "images" / n).is_file())
        print(f"{part}: {link_set(gb, names, args.out / part)} images -> {args.out / part}")


if __name__ == "__main__":
    main()
