"""Where a LungSAM project lives: the ``.lungsam/`` folder inside an image folder.

Every module that reads or writes inside it takes the names from here::

    <image folder>/.lungsam/
        project.db    SQLite: images, annotation versions, trained model versions
        masks/        masks/<image_id>/v<version>_<label>.png (1-bit, original image size)
        lock          one writer per folder (flock; pid and host inside)
        models/       model versions fine-tuned in the GUI, one model folder each
        backups/      the database as it was before a schema upgrade or a repair (never read)
        runs/         one folder per fine-tuning run (kept as a record, never a model)
"""

from __future__ import annotations

from pathlib import Path

PROJECT_DIR = ".lungsam"
DB_FILE = "project.db"
MASKS_DIR = "masks"
LOCK_FILE = "lock"
MODELS_DIR = "models"
RUNS_DIR = "runs"
BACKUPS_DIR = "backups"


def project_dir(root: str | Path) -> Path:
    """``<root>/.lungsam``."""
    return Path(root) / PROJECT_DIR


def db_path(root: str | Path) -> Path:
    """``<root>/.lungsam/project.db``."""
    return project_dir(root) / DB_FILE


def models_dir(root: str | Path) -> Path:
    """``<root>/.lungsam/models``: the project's fine-tuned model versions."""
    return project_dir(root) / MODELS_DIR


def runs_dir(root: str | Path) -> Path:
    """``<root>/.lungsam/runs``: one folder per fine-tuning run."""
    return project_dir(root) / RUNS_DIR


def is_project(root: str | Path) -> bool:
    """Whether ``root`` holds a LungSAM project (its database exists)."""
    return db_path(root).is_file()


def backups_dir(root: str | Path) -> Path:
    """``<root>/.lungsam/backups``: databases kept before a schema upgrade or a repair."""
    return project_dir(root) / BACKUPS_DIR


def masks_dir(root: str | Path) -> Path:
    """``<root>/.lungsam/masks``: ``<image_id>/v<version>_<label>.png``."""
    return project_dir(root) / MASKS_DIR
