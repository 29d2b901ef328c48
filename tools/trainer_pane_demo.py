"""Trainer pane, end to end on CPU: annotate -> fine-tune (AdaLoRA + QAT) -> use the INT8 model.

Builds a project from ``covid_chestxray_gb`` (the images that are NOT near-duplicates of
COVID-QU-Ex, i.e. rows of ``overlap_with_covidqu_ex.csv`` with thumb_corr >= 0.95 left out),
saves N radiologist masks as the clinician's corrections (union + per-lung labels; the data
set's "left" is the patient's left), opens the real MainWindow offscreen, starts a run with
the pane's default presets, keeps using the window while it trains, saves screenshots of the
pane during and after the run, clicks "Use new model" and prints the numbers.

    python tools/trainer_pane_demo.py --out /tmp/trainer-pane-demo
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.script_support import offscreen_gui_environment, spin

offscreen_gui_environment()  # before anything imports Qt

GB = Path("/work/shared/data/covid_chestxray_gb")
FALLBACK_MODEL = Path("/root/lungsam-runs/compact-base/best")


def build_project(folder: Path, n: int, data: Path = GB) -> list[str]:
    """Copy the first ``n`` non-overlapping images and save their masks as corrected."""
    import numpy as np
    from PIL import Image

    from engine.imaging import load_image
    from engine.project import ProjectStore
    from trainer.training import read_exclude

    excluded = set(read_exclude(data / "overlap_with_covidqu_ex.csv"))
    candidates = [p for p in sorted((data / "images").iterdir()) if p.name not in excluded]
    folder.mkdir(parents=True, exist_ok=True)
    used: list[str] = []
    with ProjectStore.open(folder) as store:
        for image in candidates:
            if len(used) == n:
                break
            shape = load_image(image).pixels.shape[:2]
            masks = {}
            for label, sub in (("lungs", "masks"), ("left lung", "masks_left"), ("right lung", "masks_right")):
                path = data / sub / f"{image.stem}.png"
                if path.is_file():
                    mask = np.array(Image.open(path).convert("L")) > 127
                    if mask.shape == shape and mask.any():
                        masks[label] = mask
            if "lungs" not in masks:
                print(f"skipped {image.name}: no usable mask")
                continue
            shutil.copy(image, folder / image.name)
            store.save_annotation(image.name, masks, "corrected", model_name="radiologist (covid_chestxray_gb)")
            used.append(image.name)
    print(f"project {folder}: {len(used)} corrected images ({len(excluded)} near-duplicates of COVID-QU-Ex excluded)")
    return used


def choose_model(spec: str | None, work: Path) -> str:
    from engine.models import default_model_name, resolve_model

    if spec:
        return spec
    if default_model_name():
        return str(resolve_model(None))
    frozen = work / "models" / "compact-base"  # a copy: the base is still being trained elsewhere
    shutil.copytree(FALLBACK_MODEL, frozen)
    return str(frozen)


def settle(app, seconds: float = 0.3) -> None:
    """Let posted layout requests run, so a grab shows the geometry a user would see."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def drag(window, box) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    viewport = window.canvas.viewport()
    p0, p1 = window.canvas.image_to_viewport(box[0], box[1]), window.canvas.image_to_viewport(box[2], box[3])
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    for k in range(1, 9):
        QTest.mouseMove(viewport, QPoint(p0.x() + (p1.x() - p0.x()) * k // 8, p0.y() + (p1.y() - p0.y()) * k // 8))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="corrected images in the project")
    parser.add_argument("--model", help="model in use (default: shipped default, else a copy of the compact base)")
    parser.add_argument("--out", default="/tmp/trainer-pane-demo", help="screenshots and demo-summary.json")
    parser.add_argument("--work", help="project folder to create (default: a new temporary folder)")
    parser.add_argument("--threads", type=int, help="trainer threads (default: the pane's, cores - 1)")
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--size", default="1400x900", help="window size (the default window's, so the shots "
                        "show the pane as a user first sees it)")
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="trainer-pane-demo-"))
    project = work / "project"
    build_project(project, args.n)
    model = choose_model(args.model, work)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.gui.main_window import MainWindow
    from trainer.finetune import format_duration

    window = MainWindow(model=model, device="cpu")
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    ready = lambda: window.image is not None and not window.model_loading and window.embedded_token == window.token  # noqa: E731
    assert window.open_paths([project])
    spin(app, ready, 300, poll_s=0.005)
    window.on_toggle_trainer(True)
    pane = window.trainer_pane
    if args.threads:
        pane.settings.threads.setValue(args.threads)
    pane.settings.device.setCurrentIndex(pane.settings.device.findData("cpu"))
    spin(app, lambda: pane.split is not None, 30, poll_s=0.005)
    print(f"split: {len(pane.split.train)} train / {len(pane.split.val)} held back; base {pane.base_model()}")
    print(pane.settings.estimate_label.text())
    before_hash = window.model_info.model_hash

    # The event loop's longest stall while training runs beside it (should stay tiny).
    clock, gaps = QElapsedTimer(), []
    clock.start()
    probe = QTimer(interval=20)
    where: list[tuple[int, str]] = []

    def tick() -> None:
        gap = clock.restart()
        gaps.append((gap, "comparison" if pane.job.done else "training"))
        last = pane.events[-1]["event"] + " " + pane.events[-1]["stage"] if pane.events else "before the first event"
        where.append((gap, f"{time.monotonic() - started:.1f} s after Start, after {last}"))

    probe.timeout.connect(tick)
    started = time.monotonic()
    probe.start()
    assert pane.start(), pane.status.text()
    shots: dict[str, str] = {}  # taken so far
    image_changes: list[float] = []
    stage1_epochs = pane.plan.stage1.epochs
    deadline = started + args.timeout
    while not pane.job.done:
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() > deadline:
            pane.cancel()
            raise TimeoutError("the run took too long")
        epochs = [e for e in pane.events if e["event"] == "epoch" and e["stage"] == "stage1"]
        if len(image_changes) < len(epochs) // 4:
            t0 = time.monotonic()  # annotation continues: the next image is shown and embedded
            window.on_next_image()
            spin(app, ready, 120, poll_s=0.005)
            image_changes.append(time.monotonic() - t0)
        if "during" not in shots and epochs and epochs[-1]["epoch"] >= max(2, stage1_epochs // 2):
            settle(app)
            window.grab().save(str(out / "window-during.png"))
            pane.content.grab().save(str(out / "pane-during.png"))
            shots["during"] = str(out / "pane-during.png")
            clock.restart()  # the grabs are the demo's, not the pane's: not counted as a stall
    if pane.job.result is None or not pane.job.result.ok:
        print("run failed:", pane.job.result.reason if pane.job.result else "?")
        return 1
    spin(app, lambda: pane.comparison is not None, 1800, poll_s=0.005)
    trained_at = next((e["time"] for e in reversed(pane.events) if e["event"] == "done"), None)
    total = time.monotonic() - started
    probe.stop()
    settle(app)
    pane.content.grab().save(str(out / "pane-finished.png"))
    window.grab().save(str(out / "window-finished.png"))

    version = pane.use_new_model()
    spin(app, lambda: window.model_info.model_hash != before_hash and ready(), 300, poll_s=0.005)
    settle(app)
    pane.content.grab().save(str(out / "pane-after.png"))
    h, w = window.image.pixels.shape[:2]
    drag(window, (0.06 * w, 0.08 * h, 0.94 * w, 0.9 * h))
    spin(app, lambda: window.annotator.idle, 120, poll_s=0.005)
    settle(app)
    window.grab().save(str(out / "window-after.png"))

    c = pane.comparison
    first = next(e["time"] for e in pane.events if e["event"] in ("loading", "model", "start"))
    names = ("pane-during.png", "window-during.png", "pane-finished.png", "window-finished.png", "pane-after.png",
             "window-after.png")
    result = {
        "images": len(pane.split.train) + len(pane.split.val),
        "train": c.get("train_images"),
        "held_back": c.get("held_back"),
        "base_model": pane.plan.base_model,
        "plan": pane.plan.to_dict(),
        "estimate_s": pane.estimate.seconds if pane.estimate else None,
        "total_s": round(total, 1),
        "training_s": round(trained_at - first, 1) if trained_at else None,
        **{k: c.get(k) for k in ("dice_before", "dice_after", "dice_diff", "ci95", "p_wilcoxon", "trainable_params",
                                 "total_params")},
        "current_bytes": c["current"].get("bytes"),
        "int8_bytes": c["new"].get("bytes"),
        "registered": version["name"] if version else None,
        "run_dir": str(pane.run_dir),
        "max_event_loop_gap_ms": {phase: max((g for g, ph in gaps if ph == phase), default=None)
                                  for phase in ("training", "comparison")},
        "longest_gaps": sorted(where, reverse=True)[:3],
        "image_change_s_during_training": image_changes,
        "screenshots": [str(out / n) for n in names],
    }
    (out / "demo-summary.json").write_text(json.dumps(result, indent=2))
    print(f"run: {result['images']} corrected images ({result['train']} train / {result['held_back']} held back), "
          f"base {Path(pane.plan.base_model).name}, CPU, {pane.plan.threads} trainer thread(s)")
    print(f"duration: {format_duration(total)} from Start to the comparison (training {format_duration(result['training_s'])}); "
          f"estimated {format_duration(result['estimate_s'])}")
    print(f"held-back Dice: {c['dice_before']:.4f} (current) -> {c['dice_after']:.4f} (new INT8), "
          f"diff {c['dice_diff']:+.4f}, 95% CI {c['ci95']}, Wilcoxon p = {c['p_wilcoxon']}")
    print(f"trainable params {c['trainable_params']:,} of {c['total_params']:,}; model file "
          f"{c['current']['bytes'] / 1e6:.1f} MB -> {c['new']['bytes'] / 1e6:.1f} MB (INT8)")
    gap = result["max_event_loop_gap_ms"]
    print(f"GUI event loop: longest gap {gap['training']} ms while training, {gap['comparison']} ms during the "
          f"comparison (a QThread building two models); image changes while training "
          f"{', '.join(f'{t:.2f} s' for t in image_changes) or 'none'}")
    print(f"registered and in use: {result['registered']}; screenshots: {', '.join(result['screenshots'])}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
