"""What a wheel ships: every code package of the tree, and the models and samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomllib's predecessor, when installed
    tomllib = pytest.importorskip("tomli")


def test_the_wheels_package_list_is_the_tree():
    """pyproject lists the packages (resources/ maps to lungsam_resources): a new sub-package
    missing from the list would be missing from every install outside a checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {".".join(p.parent.relative_to(ROOT).parts) for top in ("app", "engine", "trainer")
            for p in (ROOT / top).rglob("__init__.py")}
    assert set(config["packages"]) == tree | {"lungsam_resources"}
    assert config["package-dir"] == {"lungsam_resources": "resources"}
    shipped = config["package-data"]["lungsam_resources"]
    resources = ROOT / "resources"
    for needed in ("models/DEFAULT", "models/lungsam-compact-base/weights.safetensors",
                   "models/lungsam-compact-int8/box_head.safetensors", "models/lungsam-compact-fp32/model.json",
                   "models/lungsam-compact-fp32/weights.safetensors", "models/lungsam-compact-fp32/box_head.safetensors",
                   "samples/ARDSSevere.png"):
        assert any(Path(needed).match(pattern) for pattern in shipped) and (resources / needed).is_file(), needed
