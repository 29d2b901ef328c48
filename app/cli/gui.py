"""`lungsam gui [FOLDER|FILES...]`: the annotation desktop program.

PySide6 is imported inside :func:`run_gui` only, so other sub-commands never load Qt.
"""

from __future__ import annotations

import argparse


def add_gui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="annotate lungs interactively (box -> mask, brush, save, export)")
    p.add_argument("paths", nargs="*", help="a folder of images (searched recursively) or image/DICOM files")
    p.add_argument("--model", help="model name, model folder or official .pth (default: shipped default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="the compare view: models A and B side by side on the first image given")
    p.set_defaults(func=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from engine.device import resolve_device

    resolve_device(args.device)  # CUDA asked for but absent: a clear error before any window
    if args.compare:
        from app.gui.compare.window import run_compare

        return run_compare(*args.compare, args.paths, device=args.device)
    from app.gui.app import run

    return run(args.paths, model=args.model, device=args.device)
