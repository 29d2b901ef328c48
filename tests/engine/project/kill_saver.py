"""Kill-test helper: save random annotations into a project forever, printing nothing.

Usage: ``python tests/engine/project/kill_saver.py ROOT N``. Creates ``N`` small placeholder image
files in ROOT if missing, opens the project for writing and loops: pick an image, a random
non-empty label subset, random blob masks and a random kind, save. The test kills it with
SIGKILL at random moments and checks the project after each kill.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # run as a plain script

import numpy as np

from engine.project import KINDS, LABELS, ProjectStore


def image_names(n: int) -> list[str]:
    return [f"case{i:02d}.png" for i in range(n)]


def image_shape(index: int) -> tuple[int, int]:
    """Fixed per image (masks must keep the image's size), different between images."""
    return 160 + 16 * (index % 4), 192 + 8 * (index % 3)


def random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A few random ellipses plus speckle, so PNG sizes and run lengths vary."""
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(4, height / 2), rng.uniform(4, width / 3)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    mask ^= rng.random((height, width)) < 0.01
    return mask


def main(argv: list[str]) -> None:
    root, n = Path(argv[1]), int(argv[2])
    names = image_names(n)
    for name in names:
        if not (root / name).exists():
            (root / name).write_bytes(b"placeholder")
    rng = np.random.default_rng()
    with ProjectStore.open(root) as store:
        store.register_images(names)
        while True:
            index = int(rng.integers(n))
            height, width = image_shape(index)
            chosen = [label for label in LABELS if rng.random() < 0.6] or [LABELS[0]]
            masks = {label: random_mask(rng, height, width) for label in chosen}
            kind = KINDS[int(rng.integers(len(KINDS)))]
            box = [int(v) for v in rng.integers(0, min(height, width), 4)]
            store.save_annotation(
                names[index],
                masks,
                kind,
                model_name="kill-test",
                model_hash="0" * 16,
                prompts={"box": box},
            )


if __name__ == "__main__":
    main(sys.argv)
