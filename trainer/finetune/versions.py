"""Model versions of a project: registering a finished fine-tune, history, rollback.

A run is registered only when the user (or ``lungsam finetune``) chooses it: its INT8 folder is copied to
``<project>/.lungsam/models/<name>/`` under a temporary name and renamed when complete
(:func:`engine.atomic.atomic_directory`), and only THEN recorded with
:meth:`engine.project.store.ProjectStore.add_model_version` with its provenance and metrics.
A cancelled or failed run is never registered; its run folder stays under ``.lungsam/runs/``
as a record, where no model list looks.

Rollback needs the model used before the first fine-tune in the history too, so registering
also records that model (by its path, as ``role: base``) when the project does not know it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from engine.atomic import atomic_directory
from engine.errors import LungSamError
from engine.models import MODEL_JSON
from engine.project import models_dir


def models_root(project: Path) -> Path:
    return models_dir(project)


def version_name(run_dir: Path) -> str:
    return f"ft-{Path(run_dir).name}"


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file or folder (False when one cannot be resolved)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def find_version(versions: list[dict[str, Any]], path: str | Path | None) -> dict[str, Any] | None:
    if not path:
        return None
    return next((v for v in versions if same_path(v["path"], path)), None)


def ensure_base_in_history(store, source: str, name: str, model_hash: str) -> str:
    """Record the model in use before a fine-tune (the rollback target); returns its name."""
    versions = store.list_model_versions()
    known = find_version(versions, source)
    if known is not None:
        return known["name"]
    taken = {v["name"] for v in versions}
    label, k = name, 2
    while label in taken:
        label, k = f"{name}-{k}", k + 1
    store.add_model_version(label, source, {"role": "base", "source": source, "model_hash": model_hash}, {})
    return label


def register_run(store, run_dir: Path, plan: dict[str, Any], comparison: dict[str, Any],
                 previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy the run's INT8 model into the project, then record it; returns the version row.

    ``previous``: {"source", "name", "hash"} of the model in use, kept in the history.
    """
    run_dir = Path(run_dir)
    int8 = run_dir / "stage2" / "int8"
    if not (int8 / MODEL_JSON).is_file():
        raise LungSamError(f"{run_dir}: the run has no INT8 model (did Stage 2 finish?)")
    if store.read_only:
        raise LungSamError("the project is open read-only: the model cannot be registered")
    name = version_name(run_dir)
    target = models_root(store.root) / name
    meta = json.loads((int8 / MODEL_JSON).read_text())
    stage1 = _read_json(run_dir / "stage1" / "summary.json")
    stage2 = _read_json(run_dir / "stage2" / "summary.json")
    trainer_prov = meta.get("provenance") or {}
    provenance = {
        "role": "fine-tune",
        "base_model": plan.get("base_model"),
        "run": _rel(run_dir, store.root),
        "source_int8": _rel(int8, store.root),
        "data": {
            "train_images": len(stage2.get("train_names", [])),
            "val_images": len(stage2.get("val_names", [])),
            "val_fraction": plan.get("val_fraction"),
            "seed": plan.get("seed"),
            "val_names": stage2.get("val_names", []),
        },
        "presets": {"stage1": plan.get("stage1"), "stage2": plan.get("stage2")},
        "device": plan.get("device"),
        "git_revision": trainer_prov.get("git_revision"),
        "trainer_command": trainer_prov.get("command"),
        "previous_model": dict(previous) if previous else None,
    }
    metrics = {
        "held_back_images": comparison.get("held_back"),
        "dice_before": comparison.get("dice_before"),
        "dice_after": comparison.get("dice_after"),
        "p_wilcoxon": comparison.get("p_wilcoxon"),
        "ci95": comparison.get("ci95"),
        "verdict": (comparison.get("verdict") or {}).get("kind"),
        "prompt": comparison.get("prompt"),
        "trainable_params": stage1.get("trainable_params"),
        "total_params": stage1.get("total_params") or stage2.get("total_params"),
        "int8_bytes": (comparison.get("new") or {}).get("bytes"),
        "stage1_best_score": stage1.get("best_score"),
        "stage2_best_score": stage2.get("best_score"),
    }
    meta["name"] = name  # the model hash covers weights and structure, not the name
    meta["project_version"] = {"run": provenance["run"], "base_model": provenance["base_model"]}
    with atomic_directory(target) as tmp:
        for item in int8.iterdir():
            if item.is_file() and item.name != MODEL_JSON:
                shutil.copy2(item, tmp / item.name)
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    try:
        if previous and previous.get("source"):
            previous_row: dict[str, Any] = provenance["previous_model"]  # type: ignore[assignment]
            previous_row["version"] = ensure_base_in_history(
                store, previous["source"], previous.get("name") or "base", previous.get("hash") or "")
        store.add_model_version(name, target, provenance, metrics)
        store.set_active_model(name)
    except BaseException:
        if find_version(store.list_model_versions(), target) is None:
            shutil.rmtree(target, ignore_errors=True)  # no row points at it: leave nothing behind
        raise
    version = find_version(store.list_model_versions(), target)
    assert version is not None
    return version


def activate(store, name: str) -> dict[str, Any]:
    """Make version ``name`` the project's model (rollback / roll forward); returns its row."""
    version = next((v for v in store.list_model_versions() if v["name"] == name), None)
    if version is None:
        raise LungSamError(f"no model version named {name!r} in this project")
    if not Path(version["path"]).exists():
        raise LungSamError(f"{name}: its model folder {version['path']} is missing")
    store.set_active_model(name)
    return {**version, "active": True}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
