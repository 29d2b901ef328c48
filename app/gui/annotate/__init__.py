"""Annotating one image after another: the canvas and its overlay, the annotator (box,
points, brush, undo) and its per-image session and edit history, mask operations, the labels
panel, the image list and the background image loader, the model worker (latest wins; the GUI
thread never runs a model), DICOM windowing and the project (autosave into ``.lungsam/``); zero-click: editable box
handles, proposals as lung labels, the folder job and its progress, the review queue.
"""

from app.gui.annotate.annotator import Annotator
from app.gui.annotate.canvas import Canvas
from app.gui.annotate.edit_history import EditHistory
from app.gui.annotate.image_list import ImageList
from app.gui.annotate.labels_panel import LABEL_ORDER, LabelsPanel
from app.gui.annotate.loader import ImageLoader
from app.gui.annotate.project import Project
from app.gui.annotate.session import ImageSession
from app.gui.annotate.windowing import PRESETS, Windower
from app.gui.annotate.worker import LatestMailbox, ModelInfo, ModelWorker
from app.gui.annotate.zero_click import current_auto

__all__ = [
    "Annotator",
    "Canvas",
    "EditHistory",
    "ImageList",
    "ImageLoader",
    "ImageSession",
    "LABEL_ORDER",
    "LabelsPanel",
    "LatestMailbox",
    "ModelInfo",
    "ModelWorker",
    "PRESETS",
    "Project",
    "Windower",
    "current_auto",
]
