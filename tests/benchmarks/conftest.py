"""The benchmark scripts are files, not a package: load one as a module for its tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def benchmark_module(script: str) -> Iterator[ModuleType]:
    """Yield ``benchmarks/<script>.py`` loaded as module ``bench_<script>`` (dropped after)."""
    name = f"bench_{script}"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)
