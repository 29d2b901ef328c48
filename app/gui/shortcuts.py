"""One table of every action the user triggers often, with its keys and menu.

The main window builds its menus and QActions from :data:`ACTIONS`, and Help > Shortcuts
shows the same table plus :data:`MOUSE`, so what is documented is what is bound. Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    """``id`` names the MainWindow handler ``on_<id>``; ``keys`` are QKeySequence strings."""

    id: str
    text: str
    keys: tuple[str, ...]
    menu: str
    tip: str = ""
    checkable: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_folder", "Open &folder...", ("Ctrl+O",), "File", "Open a folder of images (recursively)"),
    ActionSpec("open_files", "Open f&iles...", ("Ctrl+Shift+O",), "File", "Open image or DICOM files"),
    ActionSpec("save", "&Save (accept as corrected)", ("Ctrl+S",), "File", "Save the masks as the clinician's final version"),
    ActionSpec("save_next", "Save and go to the &next image", ("Ctrl+Return",), "File",
               "Accept the masks as corrected, then open the next image"),
    ActionSpec("skip", "S&kip image", ("S",), "File", "Mark the image as skipped and go to the next one"),
    ActionSpec("export", "&Export...", ("Ctrl+E",), "File", "Choose formats: PNG, COCO RLE, DICOM-SEG, NIfTI, LabelMe, YOLO-seg"),
    ActionSpec("quit", "&Quit", ("Ctrl+Q",), "File"),
    ActionSpec("next_image", "&Next image", ("N", "PgDown"), "Navigate"),
    ActionSpec("previous_image", "&Previous image", ("P", "PgUp"), "Navigate"),
    ActionSpec("next_unfinished", "Next &unfinished image", ("Shift+N",), "Navigate", "Next image that is new or has a model mask only"),
    ActionSpec("next_doubtful", "Next &doubtful image", ("D",), "Navigate",
               "The unreviewed model mask with the lowest quality score (the review queue's head)"),
    ActionSpec("accept_doubtful", "Accept mask and go to the next doubtful", ("Y",), "Navigate",
               "Save the mask as corrected (reviewed, no edit needed), then open the next doubtful image"),
    ActionSpec("sort_doubtful", "Sort images: most doubtful first", (), "Navigate",
               "Model masks by quality score, lowest first; then new, corrected, skipped images", True),
    ActionSpec("undo", "&Undo", ("Ctrl+Z",), "Edit"),
    ActionSpec("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit"),
    ActionSpec("fill_holes", "&Fill holes", ("F",), "Edit", "Fill enclosed holes of the current label"),
    ActionSpec("remove_islands", "Remove small &islands", ("I",), "Edit", "Drop parts smaller than 5 % of the largest"),
    ActionSpec("clear_label", "&Clear label", ("Delete",), "Edit", "Remove the current label's mask and prompts"),
    ActionSpec("propose", "Propose both lungs (&zero-click)", ("A",), "Tools",
               "The model proposes both lungs' boxes and masks; drag a box's corner or edge to correct it"),
    ActionSpec("segment_folder", "Segment &folder", ("Ctrl+Shift+A",), "Tools",
               "Pre-segment every new image of the folder in the background; images with a mask are never touched"),
    ActionSpec("tool_box", "&Box", ("B",), "Tools", "Drag a box, or a box's corner or edge; the mask follows the mouse", True),
    ActionSpec("tool_positive", "&Positive point", ("+", "="), "Tools", "Click inside the lung to add it", True),
    ActionSpec("tool_negative", "&Negative point", ("-",), "Tools", "Click outside the lung to remove it", True),
    ActionSpec("tool_brush", "B&rush", ("R",), "Tools", "Paint the current label", True),
    ActionSpec("tool_eraser", "&Eraser", ("E",), "Tools", "Erase the current label", True),
    ActionSpec("tool_pan", "Pan / &zoom", ("Z",), "Tools", "Left drag pans, the wheel zooms around the cursor", True),
    ActionSpec("tool_window", "&Window / level", ("L",), "Tools", "Left drag: right = wider window, down = brighter level (display only)", True),
    ActionSpec("brush_smaller", "Brush s&maller", ("[",), "Tools"),
    ActionSpec("brush_bigger", "Brush bi&gger", ("]",), "Tools"),
    ActionSpec("label_1", "&1 Right lung (image left)", ("1",), "Labels", checkable=True),
    ActionSpec("label_2", "&2 Left lung (image right)", ("2",), "Labels", checkable=True),
    ActionSpec("label_3", "&3 Lungs (both)", ("3",), "Labels", checkable=True),
    ActionSpec("next_style", "Next &mask style", ("M",), "Labels",
               "Cycle the model's mask styles (annotation conventions); redraws every model-drawn label (one undo step)"),
    ActionSpec("fit", "&Fit to window", ("0",), "View"),
    ActionSpec("zoom_in", "Zoom &in", ("Ctrl++", "Ctrl+="), "View"),
    ActionSpec("zoom_out", "Zoom &out", ("Ctrl+-",), "View"),
    ActionSpec("toggle_outline", "&Outline mode", ("O",), "View", checkable=True),
    ActionSpec("toggle_masks", "&Hide masks", ("H",), "View", checkable=True),
    ActionSpec("opacity_up", "More opaque", (".",), "View"),
    ActionSpec("opacity_down", "More transparent", (",",), "View"),
    ActionSpec("window_preset", "Next &window preset", ("W",), "View", "Cycle window presets (auto 0.5-99.5 %, full, narrow, wide); display only"),
    ActionSpec("compare_models", "&Compare models", (), "View",
               "Two models side by side on this image and the same live box (default: the FP32 twin vs the current model)"),
    ActionSpec("toggle_trainer", "&Trainer pane", ("Ctrl+T",), "View", "Fine-tune on the corrected masks, then use the new model", True),
    ActionSpec("shortcuts", "&Keyboard shortcuts", ("F1",), "Help"),
    ActionSpec("about", "&About LungSAM", (), "Help"),
)

MOUSE: tuple[tuple[str, str], ...] = (
    ("Left drag (Box tool)", "Draw the current label's box; the mask follows"),
    ("Left drag on a box's corner or edge (Box tool)", "Resize that lung's box; its mask follows"),
    ("Shift + click", "Positive point (add to the current label)"),
    ("Right-click, or Alt + click", "Negative point (remove from the current label)"),
    ("Left drag (Brush / Eraser)", "Paint or erase the current label"),
    ("Ctrl + left drag, or left drag (Window tool)", "Window / level: right = wider, down = brighter level"),
    ("Middle drag, Space + left drag, or left drag (Pan tool)", "Pan"),
    ("Wheel", "Zoom around the cursor"),
)

MENUS: tuple[str, ...] = ("File", "Edit", "Navigate", "Tools", "Labels", "View", "Model", "Help")


def action(action_id: str) -> ActionSpec:
    for spec in ACTIONS:
        if spec.id == action_id:
            return spec
    raise KeyError(action_id)


def rows() -> list[tuple[str, str, str]]:
    """(menu, action, keys) rows for the shortcuts dialog, keyboard first, then mouse."""
    table = [
        (spec.menu, spec.text.replace("&", ""), ", ".join(spec.keys))
        for spec in ACTIONS
        if spec.keys
    ]
    table += [("Mouse", what, gesture) for gesture, what in MOUSE]
    return table
