"""benchmarks/focus_radius.py: each radius it reports is the one the predictor used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine.predict.focus as focus
from tests.benchmarks.conftest import benchmark_module
from tests.conftest import synthetic_cxr


@pytest.fixture()
def bench():
    yield from benchmark_module("focus_radius")


def pairs_folder(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        image = synthetic_cxr(72, 64, seed=k)
        Image.fromarray(image).save(root / "images" / f"case {k}.png")
        Image.fromarray(((image > 120) * 255).astype(np.uint8)).save(root / "masks" / f"case {k}.png")
    return root


def test_each_radius_reaches_the_predictor_and_the_shipped_one_comes_back(bench, loaded_tiny, tmp_path, monkeypatch):
    data = pairs_folder(tmp_path / "set", 3)
    monkeypatch.setattr(bench, "load_model", lambda name: loaded_tiny)
    seen: list[float] = []
    disk = focus.focus_disk

    def spy(*args, **kwargs):
        seen.append(focus.FOCUS_RADIUS)
        return disk(*args, **kwargs)

    monkeypatch.setattr(focus, "focus_disk", spy)
    out = tmp_path / "radius.json"
    result = bench.main(["--data", f"{data}:2", "--data", f"{data}:all", "--radii", "2,16",
                         "--clicks", "2", "--threads", "1", "--json", str(out)])
    assert focus.FOCUS_RADIUS == 0.125  # restored for whatever runs next
    assert set(seen) <= {2 / 64, 16 / 64} and {2 / 64, 16 / 64} & set(seen), seen
    assert sorted(result["results"]) == ["16/64", "2/64"]
    rows = result["results"]["2/64"]
    assert [rows[s]["n"] for s in (f"{data}:2", f"{data}:all")] == [2, 3]
    assert all(len(r["mean_dice"]) == 3 for r in rows.values())
    assert json.loads(out.read_text())["chosen"] == result["chosen"]
    safe = [r for r in (2, 16) if all(v["worse_after_click_1"] <= 0.05 for v in result["results"][f"{r}/64"].values())]
    assert result["chosen"] == (max(safe) if safe else None)
