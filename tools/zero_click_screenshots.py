"""Screenshots of zero-click and the review queue with the shipped model (offscreen).

Copies real chest X-rays (``--data``/images, plus the shipped samples, which come from
another site), two deliberately spoilt copies (one rotated by 90 degrees, one inverted: the
masks the queue should put first) and one unreadable file to a temporary folder,
opens the MainWindow at 1400 x 900, presses A on one image (``zero_click.png``: both lungs
proposed, their boxes editable), then runs Tools > Segment folder, sorts the list most
doubtful first and presses D (``review_queue.png``).

    python tools/zero_click_screenshots.py --out docs/screenshots
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.script_support import offscreen_gui_environment, spin

offscreen_gui_environment()  # before anything imports Qt

DEFAULT_DATA = Path("/work/shared/data/covidqu_ex/val")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with images/")
    parser.add_argument("--count", type=int, default=8, help="images taken from --data")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lungsam-screenshots")
    parser.add_argument("--size", default="1400x900")
    args = parser.parse_args()

    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from engine.models.registry import resources_dir

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="lungsam-zero-click-"))
    try:
        for path in sorted((args.data / "images").iterdir())[: args.count]:
            shutil.copy(path, tmp / path.name)
        for path in sorted((resources_dir() / "samples").glob("*.*g")):
            shutil.copy(path, tmp / path.name)
        import numpy as np
        from PIL import Image

        spoilt = np.array(Image.open(sorted((args.data / "images").iterdir())[3]).convert("L"))
        Image.fromarray(np.rot90(spoilt).copy()).save(tmp / "case-rotated.png")
        Image.fromarray(255 - spoilt).save(tmp / "case-inverted.png")
        (tmp / "scan-0042.dcm").write_bytes(b"DICM" + b"\0" * 64)  # a truncated file: listed as unreadable
        window = MainWindow(device="cpu")
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(width, height)
        window.show()
        spin(app, lambda: not window.model_loading, poll_s=0.002)
        window.open_paths([tmp])
        ready = lambda: window.image is not None and window.embedded_token == window.token  # noqa: E731
        row = window.project.index_of("pneumocystis-pneumonia-1.jpg")
        window.go_to(row)
        spin(app, ready, poll_s=0.002)
        window.on_label_1()
        window.on_propose()
        spin(app, lambda: window.annotator.idle and window.annotator.session.masks, poll_s=0.002)
        message = window.statusBar().currentMessage()
        canvas = window.canvas
        x0, y0, x1, y1 = window.annotator.session.prompt("right lung").box
        QTest.mouseMove(canvas.viewport(), canvas.image_to_viewport(x1, y1))  # the resize cursor (not in grab)
        window.statusBar().showMessage(message, 60000)
        end = time.monotonic() + 0.3  # the labels panel refreshes its areas at most every 100 ms
        spin(app, lambda: time.monotonic() > end, poll_s=0.01)
        args.out.mkdir(parents=True, exist_ok=True)
        zero_click = args.out / "zero_click.png"
        window.grab().save(str(zero_click))

        window.on_segment_folder()
        spin(app, lambda: not window.folder_job.running, timeout=600, poll_s=0.01)
        spin(app, lambda: not window.job_progress.isVisible(), poll_s=0.01)
        window.set_sort("doubtful")
        window.on_next_doubtful()
        spin(app, ready, poll_s=0.002)
        spin(app, lambda: window.annotator.session is not None, poll_s=0.002)
        app.processEvents()
        review = args.out / "review_queue.png"
        window.grab().save(str(review))
        window.close()
        print(zero_click)
        print(review)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
