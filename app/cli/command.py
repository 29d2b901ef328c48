"""The `lungsam` command. Sub-commands import their heavy modules lazily, so
`lungsam segment` never imports Qt and `lungsam --help` starts instantly."""

from __future__ import annotations

import argparse
import logging
import os
import sys

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from app.cli.eval import add_eval_parsers
    from app.cli.export_onnx import add_export_onnx_parser
    from app.cli.finetune import add_finetune_parser
    from app.cli.gui import add_gui_parser
    from app.cli.project import add_project_parser
    from app.cli.segment import add_segment_parsers
    from app.cli.train import add_train_parser

    parser = argparse.ArgumentParser(
        prog="lungsam",
        description="Lung segmentation on chest X-rays with a compressed Segment Anything model: "
        "annotate (gui), segment from boxes, train, fine-tune a project (finetune), evaluate and report, export to ONNX, check a project.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_parsers(sub)
    add_train_parser(sub)
    add_finetune_parser(sub)
    add_gui_parser(sub)
    add_eval_parsers(sub)
    add_export_onnx_parser(sub)
    add_project_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    from engine.errors import LungSamError

    try:
        return int(args.func(args) or 0)
    except LungSamError as exc:
        print(f"lungsam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lungsam: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback reaches a user; LUNGSAM_DEBUG=1 shows it
        if os.environ.get("LUNGSAM_DEBUG"):
            raise
        print(f"lungsam: error: {type(exc).__name__}: {exc} (LUNGSAM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
