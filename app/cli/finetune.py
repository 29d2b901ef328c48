"""`lungsam finetune PROJECT_FOLDER`: the trainer pane's fine-tune from a terminal (no Qt).

The same :class:`trainer.finetune.FineTune` the pane drives: the project's corrected masks,
the patient-grouped split, Stage 1 -> Stage 2 -> held-back comparison -> register, with the
same JSON-lines events as ``lungsam train`` (``--events -``). By default the new model is
registered in the project only when the comparison says it is better (``--register``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_finetune_parser(sub: argparse._SubParsersAction) -> None:
    from trainer.settings import add_stage_arguments

    p = sub.add_parser("finetune", help="fine-tune on a project's corrected masks: stage1 -> stage2 -> compare -> register",
                       description="Fine-tune a model on the corrected masks of PROJECT_FOLDER as the trainer pane "
                       "does: Stage 1 (AdaLoRA) -> Stage 2 (QAT) -> comparison with the current model on the "
                       "held-back images -> register the new model in the project when it is better.")
    p.add_argument("project", metavar="PROJECT_FOLDER", help="folder with images and corrected masks (.lungsam/)")
    p.add_argument("--base", help="FP32 model to fine-tune (default: the base of the project's model, "
                   "else the shipped lungsam-compact-base)")
    p.add_argument("--current", help="model the new one is compared with (default: the project's active "
                   "model, else the shipped default)")
    p.add_argument("--register", choices=["if-better", "always", "never"], default="if-better",
                   help="register the new model in the project (default: only when it is better)")
    p.add_argument("--events", help="write JSON-lines progress events to FILE or - (stdout)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held back for the comparison (by patient)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--style", help="mask style the corrections are drawn in (default: the model's first)")
    p.add_argument("--preset", choices=["default", "paper"], default="default", help="stage1 learning rates")
    for stage in ("stage1", "stage2"):
        add_stage_arguments(p.add_argument_group(f"{stage} settings"), stage)
    p.set_defaults(func=run_finetune)


def current_model(store, given: str | None) -> str | None:
    """The model the project uses now: ``--current``, its active version, or the shipped default."""
    from engine.errors import LungSamError
    from engine.models import resolve_model

    if given:
        return str(resolve_model(given))
    active = store.active_model()
    if active and Path(active["path"]).exists():
        return str(active["path"])
    try:
        return str(resolve_model(None))
    except LungSamError:
        return None


def run_finetune(args: argparse.Namespace) -> int:
    from app.cli.train import cancel_on_sigterm
    from engine.errors import LungSamError
    from engine.models import resolve_model
    from engine.project import ProjectStore
    from trainer.finetune import (
        FineTune,
        TrainPlan,
        fine_tune_base,
        held_back_note,
        preview_split,
        split_problem,
    )
    from trainer.settings import stage_settings_from_args

    cancel_on_sigterm()
    project = Path(args.project)
    if not project.is_dir():
        raise LungSamError(f"{project}: no such folder")
    stage1 = stage_settings_from_args("stage1", args, args.preset)
    stage2 = stage_settings_from_args("stage2", args)
    with ProjectStore.open(project, read_only=True) as store:
        versions = store.list_model_versions()
        current = current_model(store, args.current)
    split = preview_split(project, args.val_fraction, args.seed)  # says so when nothing is corrected
    if split_problem(split):
        raise LungSamError(split_problem(split))
    base = str(resolve_model(args.base)) if args.base else fine_tune_base(current, versions)
    plan = TrainPlan(project, base or "", stage1, stage2, args.val_fraction, args.seed, args.device,  # type: ignore[arg-type]
                     args.threads, args.style)
    finetune = FineTune.begin(plan)
    human = sys.stderr if args.events == "-" else sys.stdout
    print(f"fine-tuning {Path(plan.base_model).name} on {len(split.train)} corrected image(s), "
          f"{len(split.val)} held back; run folder {finetune.run_dir}", file=human)
    note = held_back_note(len(split.val), args.val_fraction)
    if note:
        print(note, file=human)
    previous = {"source": current, "name": Path(current).name, "hash": ""} if current else None
    result = finetune.run(current or plan.base_model, args.events, args.register, previous,
                          progress=args.events != "-")
    print(result["verdict"]["text"], file=human)
    if result["registered"]:
        print(f"registered {result['registered']['name']} as the project's model "
              f"({result['registered']['path']})", file=human)
    else:
        print(f"kept the current model; the new one is in {finetune.int8_model}", file=human)
    return 0
