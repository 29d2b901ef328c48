"""The trainer pane (Ctrl+T): plan a fine-tuning run on the project's corrected images,
run it as a ``lungsam train`` subprocess and follow its events, compare the new model with the
base on the held-back images, and keep, activate or roll back the project's model versions.
"""

from app.gui.trainer.model_versions import same_path
from app.gui.trainer.pane import install_trainer_dock
from app.gui.trainer.plan import format_duration
from app.gui.trainer.result_view import with_style
from app.gui.trainer.summary import evaluate_on, held_back_pairs

__all__ = [
    "evaluate_on",
    "format_duration",
    "held_back_pairs",
    "install_trainer_dock",
    "same_path",
    "with_style",
]
