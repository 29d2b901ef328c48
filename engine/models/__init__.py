"""Our model folders and where models come from: ``model.json`` + ``weights.safetensors``
(:mod:`~engine.models.folder`), the adapter/INT8 structure a folder declares and rebuilds
(:mod:`~engine.models.structure`), the registry of shipped and user models and official
checkpoints (:mod:`~engine.models.registry`), and the INT8 export of a trained model
(:mod:`~engine.models.int8_export`).
"""

from engine.models.box_head_file import BOX_HEAD_FILE, load_box_head, save_box_head
from engine.models.folder import (
    MODEL_JSON,
    WEIGHTS_FILE,
    LoadedModel,
    load_model_folder,
    read_model_json,
    save_sam_folder,
    sha256_file,
)
from engine.models.int8_export import export_int8
from engine.models.registry import (
    SHIPPED_BASE,
    ModelEntry,
    default_model_name,
    import_checkpoint,
    list_models,
    load_model,
    load_official_checkpoint,
    resolve_model,
    shipped_models_dir,
    user_models_dir,
)
from engine.models.structure import INT8_SCHEME, describe_structure, remember_adalora_config

__all__ = [
    "BOX_HEAD_FILE",
    "load_box_head",
    "save_box_head",
    "INT8_SCHEME",
    "LoadedModel",
    "MODEL_JSON",
    "SHIPPED_BASE",
    "ModelEntry",
    "WEIGHTS_FILE",
    "default_model_name",
    "describe_structure",
    "export_int8",
    "import_checkpoint",
    "list_models",
    "load_model",
    "load_model_folder",
    "load_official_checkpoint",
    "read_model_json",
    "remember_adalora_config",
    "resolve_model",
    "save_sam_folder",
    "sha256_file",
    "shipped_models_dir",
    "user_models_dir",
]
