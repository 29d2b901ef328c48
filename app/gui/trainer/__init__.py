"""The trainer pane (Ctrl+T): a view over :class:`trainer.finetune.FineTune`. It shows the
corrected images of the open project and the split, runs the stages as ``lungsam train``
subprocesses and follows their events, shows the held-back comparison and its verdict, and
keeps, activates or rolls back the project's model versions.
"""

from app.gui.trainer.pane import install_trainer_dock
from app.gui.trainer.result_view import with_style

__all__ = ["install_trainer_dock", "with_style"]
