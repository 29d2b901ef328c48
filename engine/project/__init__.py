"""The annotation project of an image folder: ``.lungsam/`` beside the images
(:mod:`~engine.project.layout`), the store of image statuses, annotation versions and trained
model versions (:class:`ProjectStore`, built from :mod:`~engine.project.db`,
:mod:`~engine.project.annotations`, :mod:`~engine.project.model_versions`, :mod:`~engine.project.review`,
:mod:`~engine.project.maintenance` and :mod:`~engine.project.lock`), the mask PNG files
(:mod:`~engine.project.mask_png`), the schema and its upgrades (:mod:`~engine.project.schema`),
the read-only health check and the repair (:mod:`~engine.project.health`,
:mod:`~engine.project.repair`), exports to PNG, COCO RLE and DICOM-SEG
(:mod:`~engine.project.export`) and the lung areas written beside them
(:mod:`~engine.project.measurements`).
"""

from engine.project.annotations import Annotation
from engine.project.errors import (
    DamagedProjectError,
    DiskFullError,
    ImageNotInProjectError,
    MaskShapeError,
    NewerProjectError,
    ProjectLockedError,
    ProjectStoreError,
    ReadOnlyProjectError,
    UnknownLabelError,
    UnreadableProjectError,
    UnwritableProjectError,
)
from engine.project.export import (
    ExportError,
    export_coco,
    export_dicom_seg,
    export_masks,
    export_png,
    mask_filename,
    rle_counts,
    rle_decode,
    rle_encode,
)
from engine.project.export_formats import (
    export_labelme,
    export_nifti,
    export_yolo,
    read_labelme,
    read_nifti,
    read_yolo,
)
from engine.project.health import Problem, check_project, inspect_database
from engine.project.labels import KINDS, LABELS, STATUSES
from engine.project.layout import (
    DB_FILE,
    MODELS_DIR,
    PROJECT_DIR,
    RUNS_DIR,
    db_path,
    is_project,
    models_dir,
    project_dir,
    runs_dir,
)
from engine.project.measurements import (
    export_measurements,
    label_areas,
    measurement_rows,
    write_measurements,
)
from engine.project.repair import RepairReport, repair_project
from engine.project.review import AUTO_KEY
from engine.project.schema import SCHEMA_VERSION, file_content
from engine.project.store import ImageRecord, ProjectStore

__all__ = [
    "AUTO_KEY",
    "Annotation",
    "DB_FILE",
    "DamagedProjectError",
    "DiskFullError",
    "ExportError",
    "ImageNotInProjectError",
    "ImageRecord",
    "KINDS",
    "LABELS",
    "MODELS_DIR",
    "MaskShapeError",
    "NewerProjectError",
    "PROJECT_DIR",
    "Problem",
    "ProjectLockedError",
    "ProjectStore",
    "ProjectStoreError",
    "RUNS_DIR",
    "RepairReport",
    "SCHEMA_VERSION",
    "ReadOnlyProjectError",
    "STATUSES",
    "UnknownLabelError",
    "UnreadableProjectError",
    "UnwritableProjectError",
    "check_project",
    "db_path",
    "export_coco",
    "export_dicom_seg",
    "export_labelme",
    "export_masks",
    "export_measurements",
    "export_nifti",
    "export_png",
    "export_yolo",
    "file_content",
    "inspect_database",
    "read_labelme",
    "read_nifti",
    "read_yolo",
    "is_project",
    "label_areas",
    "mask_filename",
    "measurement_rows",
    "models_dir",
    "project_dir",
    "repair_project",
    "rle_counts",
    "rle_decode",
    "rle_encode",
    "runs_dir",
    "write_measurements",
]
