"""`lungsam train base|stage1|stage2`: argument parsing and wiring to the trainer (no Qt)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_settings_arguments(parser: argparse._ArgumentGroup) -> None:
    """The stage settings' options, generated from their dataclasses (imported when used)."""
    from trainer.settings import add_settings_arguments as add

    add(parser)  # type: ignore[arg-type]


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model: base (from scratch), stage1 (AdaLoRA), stage2 (QAT), "
                       "box-head (zero-click lung boxes on a model's frozen encoder, saved into its folder)")
    p.add_argument("stage", choices=["base", "stage1", "stage2", "box-head"])
    p.add_argument("--also", action="append", default=[], metavar="FOLDER",
                   help="box-head: also save the head into this model folder (e.g. the INT8 twin)")
    p.add_argument("--data", required=True, help="folder with images/ and masks/ (or a .lungsam project)")
    p.add_argument("--val", help="validation folder with images/ and masks/ (default: hold back --val-fraction of --data)")
    p.add_argument("--val-fraction", type=float, help="hold back this fraction of --data for validation (by patient)")
    p.add_argument("--model", help="model to start from (name, model folder, run folder = its best model, or .pth); "
                   "stage1 default: the shipped FP32 base lungsam-compact-base")
    p.add_argument("--arch", help="architecture for base training from scratch (e.g. compact)")
    p.add_argument("--out", help="run folder (checkpoints, events, best model); required but for box-head")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint")
    p.add_argument("--events", help="write JSON-lines progress events to FILE or - (stdout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--val-limit", type=int, help="validate on N validation images drawn at random (seeded by --seed), not the first N")
    p.add_argument("--exclude", help="CSV/text file whose first column lists image names to leave out")
    p.add_argument("--cache-dir", help="where decoded data sets are cached (default RUN/../.data-cache)")
    p.add_argument("--preset", choices=["default", "paper"], default="default",
                   help="stage1 learning rates: ours (default) or the paper's 5e-5/2e-5")
    p.add_argument("--log-every", type=int, help="emit a step event every N steps (default 10)")
    p.add_argument("--styles", help="the model's mask styles (annotation conventions), comma-separated, "
                   "e.g. visible,anatomical; new names become new output tokens copied from the first")
    p.add_argument("--data-style", help="mask style that --data and --val follow (default: the model's first)")
    p.add_argument("--style-data", action="append", metavar="NAME=DIR", default=[],
                   help="extra training data drawn in mask style NAME (repeatable)")
    p.add_argument("--style-val", action="append", metavar="NAME=DIR", default=[],
                   help="validation data for style NAME (default: hold back a fifth of its --style-data)")
    p.add_argument("--style-repeat", type=int, default=1, help="show each --style-data example N times per epoch")
    p.add_argument("--fp16-storage", action="store_true", help="store FP32 weights as FP16 on disk")
    add_settings_arguments(p.add_argument_group("stage settings (trainer.settings)"))
    p.set_defaults(func=run_train)


def cancel_on_sigterm() -> None:
    """The GUI cancels a run with SIGTERM: turn it into KeyboardInterrupt so the trainer
    reports ``failed: cancelled`` and exits (files are only ever replaced atomically)."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def request_from_args(args: argparse.Namespace):
    """The trainer's request for parsed ``lungsam train`` options (settings validated here)."""
    from trainer.data import parse_style_source
    from trainer.training import TrainRequest, settings_from_args

    return TrainRequest(
        stage=args.stage,
        data=Path(args.data),
        val=Path(args.val) if args.val else None,
        val_fraction=args.val_fraction,
        out=Path(args.out),
        model=args.model,
        arch=args.arch,
        settings=settings_from_args(args.stage, args, args.preset),
        device=args.device,
        resume=args.resume,
        events=args.events,
        seed=args.seed,
        threads=args.threads,
        val_limit=args.val_limit,
        exclude=Path(args.exclude) if args.exclude else None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        storage_dtype="float16" if args.fp16_storage else "float32",
        log_every=args.log_every,
        styles=[n.strip() for n in args.styles.split(",") if n.strip()] if args.styles else None,
        data_style=args.data_style,
        style_data=[parse_style_source(t) for t in args.style_data] or None,
        style_val=[parse_style_source(t) for t in args.style_val] or None,
        style_repeat=args.style_repeat,
    )


def run_box_head(args: argparse.Namespace) -> int:
    """`lungsam train box-head --model FOLDER --data D --val V`: the head goes into FOLDER."""
    from engine.errors import LungSamError
    from trainer.training.box_head import BoxHeadSettings, fit_box_head_for

    if not args.model or not Path(args.model, "model.json").is_file():
        raise LungSamError("box-head needs --model MODEL_FOLDER (the head is saved into that folder)")
    if not args.val:
        raise LungSamError("box-head needs --val FOLDER to choose the best epoch")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = BoxHeadSettings(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    summary = fit_box_head_for(
        Path(args.model), Path(args.data), Path(args.val), [Path(f) for f in args.also],
        Path(args.cache_dir) if args.cache_dir else None, settings,
        lambda what, done, total: print(f"{what} {done}/{total}", flush=True) if done == total else None,
    )
    best = summary["best"]
    print(f"box head saved into {args.model}: validation corner error {best['corner_px']:.2f} px, "  # type: ignore[index]
          f"mean IoU {best['iou']:.3f} (epoch {best['epoch']})")  # type: ignore[index]
    return 0


def run_train(args: argparse.Namespace) -> int:
    from trainer.training import run_stage

    if args.stage == "box-head":
        return run_box_head(args)
    if not args.out:
        from engine.errors import LungSamError

        raise LungSamError(f"train {args.stage} needs --out RUN_FOLDER")
    cancel_on_sigterm()
    run_stage(request_from_args(args))
    return 0
