"""Screenshots of the annotation window with real masks (offscreen).

Copies one chest X-ray to a temporary folder, opens the MainWindow at 1400 x 900, drags one
box per lung with the mouse (boxes taken from the ground-truth mask when the data set has
one, else one box around both lungs), waits for the model's masks and saves
``widget.grab()`` - once filled (tool bar, cursor readout), once in outline mode, the
export dialog (``<prefix>_export.png``) and the window with the trainer pane open beside the
canvas at the same size (``<prefix>_trainer.png``).

    python tools/screenshot.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.script_support import offscreen_gui_environment, spin

offscreen_gui_environment()  # before anything imports Qt

DEFAULT_DATA = Path("/work/shared/data/covidqu_ex/val")


def lung_boxes(mask_path: Path | None, shape: tuple[int, int]) -> dict[str, tuple[float, ...]]:
    """label -> box; per lung from the ground truth if there is one (patient right = image left)."""
    import numpy as np
    from PIL import Image

    from trainer.data import IMAGE_LEFT, IMAGE_RIGHT, box_of, split_lungs

    h, w = shape
    if mask_path is not None and mask_path.is_file():
        labels = split_lungs(np.array(Image.open(mask_path).convert("L")) > 127)
        boxes = {}
        for label, value in (("right lung", IMAGE_LEFT), ("left lung", IMAGE_RIGHT)):
            box = box_of(labels == value)
            if box is not None:
                boxes[label] = tuple(float(v) for v in box)
        if boxes:
            return boxes
    return {"lungs": (0.08 * w, 0.1 * h, 0.92 * w, 0.9 * h)}


def drag(window, box) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    viewport = window.canvas.viewport()
    p0 = window.canvas.image_to_viewport(box[0], box[1])
    p1 = window.canvas.image_to_viewport(box[2], box[3])
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    for k in range(1, 11):
        QTest.mouseMove(viewport, QPoint(p0.x() + (p1.x() - p0.x()) * k // 10, p0.y() + (p1.y() - p0.y()) * k // 10))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with images/ (and masks/)")
    parser.add_argument("--image", help="file name inside images/ (default: the 4th)")
    parser.add_argument("--count", type=int, default=6, help="images to list in the window")
    parser.add_argument("--model", help="model name, folder or .pth (default: the shipped default)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lungsam-screenshots")
    parser.add_argument("--size", default="1400x900")
    parser.add_argument("--style", help="mask style to draw in (e.g. anatomical; default the model's first)")
    parser.add_argument("--prefix", default="main_window", help="file name prefix of the screenshots")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    images = sorted((args.data / "images").iterdir())
    chosen = next((p for p in images if p.name == args.image), images[min(3, len(images) - 1)])
    picked = [chosen] + [p for p in images[: args.count] if p != chosen][: args.count - 1]
    tmp = Path(tempfile.mkdtemp(prefix="lungsam-shot-"))
    try:
        for path in picked:
            shutil.copy(path, tmp / path.name)
        window = MainWindow(model=args.model, device="cpu")
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(width, height)
        window.show()
        spin(app, lambda: not window.model_loading, poll_s=0.002)
        if args.style:
            window.panel.style.setCurrentText(args.style)
            if window.annotator.style != args.style:
                raise SystemExit(f"the model has no mask style {args.style!r}")
        window.open_paths([tmp])
        row = next(i for i, r in enumerate(window.project.records) if r.rel_path == chosen.name)
        window.go_to(row)
        spin(app, lambda: window.image is not None and (window.model_info is None or window.embedded_token == window.token), poll_s=0.002)
        boxes = lung_boxes(args.data / "masks" / chosen.name, window.image.pixels.shape[:2])
        for label, box in boxes.items():
            window.on_label(label)
            drag(window, box)
            spin(app, lambda: window.annotator.idle, poll_s=0.002)
        window.on_save()
        window.show_areas()  # the areas follow the masks on a 100 ms timer; show them now
        spin(app, lambda: window.status.latency.text() != "box->mask: -" or window.model_info is None, poll_s=0.002)
        from PySide6.QtTest import QTest

        h, w = window.image.pixels.shape[:2]
        QTest.mouseMove(window.canvas.viewport(), window.canvas.image_to_viewport(w * 0.3, h * 0.5))
        app.processEvents()
        args.out.mkdir(parents=True, exist_ok=True)
        filled = args.out / f"{args.prefix}.png"
        window.grab().save(str(filled))
        window.on_toggle_outline(True)
        app.processEvents()
        outline = args.out / f"{args.prefix}_outline.png"
        window.grab().save(str(outline))
        window.on_export()
        window.export_dialog.folder.setText(str(Path.home() / "lungsam-export"))
        app.processEvents()
        export = args.out / f"{args.prefix}_export.png"
        window.export_dialog.grab().save(str(export))
        window.export_dialog.close()
        window.on_toggle_outline(False)
        window.on_toggle_trainer(True)
        for _ in range(5):
            app.processEvents()
        trainer = args.out / f"{args.prefix}_trainer.png"
        window.grab().save(str(trainer))
        window.close()
        for path in (filled, outline, export, trainer):
            print(path)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
