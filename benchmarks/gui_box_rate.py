"""How fast the mask follows a dragged box in the real GUI (offscreen, this machine).

Opens the MainWindow on a few images (copied to a temporary folder, so no ``.lungsam/`` is
written next to your data), waits for the embedding, then drags a box with >= 100 mouse
moves at a fixed input rate (default 100 Hz, a typical mouse) and reports what it measured:
box updates sent, masks drawn, elapsed time, mask updates per second (target >= 20/s) and
the median box-to-mask latency (box sent -> mask drawn on the canvas).

``--large-dicom`` instead builds a 4k x 5k 16-bit DICOM and reports open time and paint
times of fit, zoom and pan (what "pans and zooms smoothly" means in numbers), plus the same
box-rate measurement on that image.

    python benchmarks/gui_box_rate.py --model /root/lungsam-runs/compact-base/best
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.script_support import offscreen_gui_environment, spin

offscreen_gui_environment()  # before anything imports Qt

DEFAULT_IMAGES = Path("/work/shared/data/covidqu_ex/val/images")


def write_large_dicom(path: Path, rows: int = 5000, cols: int = 4000) -> None:
    import numpy as np

    from tests.dicom_factory import write_dicom

    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    img = 1200 + 400 * np.sin(xx / 300) * np.cos(yy / 400)
    for cx in (0.3, 0.7):
        inside = ((xx - cx * cols) / (0.16 * cols)) ** 2 + ((yy - 0.5 * rows) / (0.3 * rows)) ** 2 < 1
        img[inside] = 3000
    img += np.random.default_rng(0).normal(0, 60, img.shape).astype(np.float32)
    write_dicom(path, img.clip(0, 16383).astype(np.uint16), patient_id="BENCH", patient_name="Bench^Large",
                bits_stored=14, window=(2000, 3000))


def paint_ms(app, canvas) -> float:
    app.processEvents()
    start = time.perf_counter()
    canvas.viewport().grab()
    return (time.perf_counter() - start) * 1000


def drag_rate(app, window, updates: int, interval_s: float) -> dict:
    """Mouse moves come from a QTimer while Qt's own event loop runs (as in the real program,
    where the GUI thread idles in C++ between events rather than spinning in Python)."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest

    canvas, annotator = window.canvas, window.annotator
    h, w = window.image.pixels.shape[:2]
    viewport = canvas.viewport()
    results0, processed0, dropped0 = annotator.results, window.worker.processed, window.worker.dropped
    annotator.latencies.clear()
    model_seconds: list[float] = []
    annotator.latency.connect(lambda _total, model: model_seconds.append(model))

    def corner(i: int) -> tuple[float, float]:
        t = i / updates  # the box grows while its corner circles: every move is a new box
        return ((0.35 + 0.5 * t) * w + 0.05 * w * math.sin(12 * t), (0.45 + 0.4 * t) * h + 0.05 * h * math.cos(12 * t))

    loop = QEventLoop()
    step = {"i": 0}

    def tick() -> None:
        step["i"] += 1
        point = canvas.image_to_viewport(*corner(step["i"]))
        if step["i"] < updates:
            QTest.mouseMove(viewport, point)
        else:
            QTest.mouseMove(viewport, point)
            QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
            timer.stop()
            poll.start()

    def check_idle() -> None:
        if annotator.idle:
            loop.quit()

    timer = QTimer(interval=max(1, round(interval_s * 1000)))
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    poll = QTimer(interval=1)
    poll.timeout.connect(check_idle)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.image_to_viewport(0.1 * w, 0.1 * h))
    start = time.perf_counter()
    timer.start()
    loop.exec()
    elapsed = time.perf_counter() - start
    poll.stop()
    masks = annotator.results - results0
    return {
        "box updates sent": updates,
        "masks drawn": masks,
        "requests run by the model": window.worker.processed - processed0,
        "stale requests dropped": window.worker.dropped - dropped0,
        "elapsed s": round(elapsed, 3),
        "mask updates per s": round(masks / elapsed, 1),
        "median box-to-mask latency ms": round(1000 * statistics.median(annotator.latencies), 1),
        "median predictor time per mask ms": round(1000 * statistics.median(model_seconds), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (first --count are copied)")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--model", help="model name/folder/.pth (default: the shipped default)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--updates", type=int, default=150, help="mouse moves in the drag (>= 100)")
    parser.add_argument("--hz", type=float, default=100.0, help="mouse move rate")
    parser.add_argument("--large-dicom", action="store_true", help="4k x 5k 16-bit DICOM instead")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import torch
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from engine.models import default_model_name

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None and default_model_name() is None:
        print("no default model is installed yet; pass --model FOLDER", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="lungsam-bench-"))
    try:
        if args.large_dicom:
            write_large_dicom(tmp / "large.dcm")
        else:
            sources = sorted(p for p in args.images.iterdir() if p.is_file())[: args.count]
            for source in sources:
                shutil.copy(source, tmp / source.name)
        window = MainWindow(model=args.model, device=args.device)
        window.resize(1400, 900)
        window.show()
        spin(app, lambda: not window.model_loading)
        if window.model_info is None:
            print("the model could not be loaded", file=sys.stderr)
            return 2
        start = time.perf_counter()
        window.open_paths([tmp])
        spin(app, lambda: window.image is not None)
        shown = time.perf_counter() - start
        spin(app, lambda: window.embedded_token == window.token)
        embedded = time.perf_counter() - start
        info = window.model_info
        report = {
            "model": info.name,
            "device": info.device,
            "torch threads": torch.get_num_threads(),
            "image": f"{window.image.width} x {window.image.height} {window.image.format}",
            "open -> image shown s": round(shown, 3),
            "open -> embedded s": round(embedded, 3),
        }
        if args.large_dicom:
            canvas = window.canvas
            report["paint at fit ms"] = round(paint_ms(app, canvas), 1)
            zooms = []
            for _ in range(10):
                canvas.zoom_by(1.3)
                zooms.append(paint_ms(app, canvas))
            pans = []
            for _ in range(20):
                canvas.horizontalScrollBar().setValue(canvas.horizontalScrollBar().value() + 40)
                canvas.verticalScrollBar().setValue(canvas.verticalScrollBar().value() + 30)
                pans.append(paint_ms(app, canvas))
            report["median paint per zoom step ms"] = round(statistics.median(zooms), 1)
            report["median paint per pan step ms"] = round(statistics.median(pans), 1)
            canvas.fit()
            start = time.perf_counter()
            window.set_window_preset("narrow")
            report["re-window ms"] = round((time.perf_counter() - start) * 1000, 1)
        report.update(drag_rate(app, window, max(100, args.updates), 1.0 / args.hz))
        window.close()
        for key, value in report.items():
            print(f"{key:32s} {value}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
