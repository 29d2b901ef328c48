"""`lungsam gui [FOLDER|FILES...]`: the annotation desktop program.

PySide6 is imported inside :func:`run_gui` only, so other sub-commands never load Qt.
"""

from __future__ import annotations

import argparse
import os
import sys

NO_DISPLAY = "no display: run under a desktop session, or set QT_QPA_PLATFORM=offscreen for headless use"


def add_gui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="annotate lungs interactively (box -> mask, brush, save, export)")
    p.add_argument("paths", nargs="*", help="a folder of images (searched recursively) or image/DICOM files")
    p.add_argument("--model", help="model name, model folder or official .pth (default: shipped default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--compare", nargs="*", metavar="MODEL",
                   help="the compare view on the first image given: two models A B side by side, or none "
                        "for the default pair (the FP32 twin lungsam-compact-fp32 vs the shipped "
                        "lungsam-compact-int8); put image paths before --compare")
    p.set_defaults(func=run_gui)


def display_missing(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Linux without X or Wayland, and no Qt platform chosen: Qt would abort (exit 134) with a
    misleading message about libxcb-cursor0, so we say what is wrong before loading Qt."""
    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux" or env.get("QT_QPA_PLATFORM"):
        return False
    return not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def run_gui(args: argparse.Namespace) -> int:
    from engine.device import resolve_device

    if args.compare is not None and len(args.compare) not in (0, 2):
        print("lungsam: --compare takes two models (A B) or none (the default pair); "
              "put image paths before --compare", file=sys.stderr)
        return 2
    if display_missing():
        print(f"lungsam: {NO_DISPLAY}", file=sys.stderr)
        return 2

    resolve_device(args.device)  # CUDA asked for but absent: a clear error before any window
    if args.compare is not None:
        from app.gui.compare.window import run_compare

        model_a, model_b = args.compare or (None, None)
        return run_compare(model_a, model_b, args.paths, device=args.device)
    from app.gui.app import run

    return run(args.paths, model=args.model, device=args.device)
