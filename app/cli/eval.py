"""`lungsam eval`, `lungsam compare` and `lungsam report` (trainer library, never Qt)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PROMPT_CHOICES = ("union", "per-lung", "auto")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with images/ and masks/ (masks_left/right optional)")
    p.add_argument("--prompt", choices=PROMPT_CHOICES, default="union",
                   help="box prompts from the ground truth: one around both lungs, or one per lung; "
                   "auto: no prompt (zero-click proposal), scored per lung, with its quality score")
    p.add_argument("--exclude", help="CSV/text file whose first column lists image names to leave out")
    p.add_argument("--limit", type=int, help="evaluate the first N pairs only")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--style", help="mask style (annotation convention) to score, e.g. anatomical "
                   "(default: the model's first)")


def add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model on an image/mask folder (Dice, IoU, HD95, ...)")
    p.add_argument("--model", help="model name, model folder or official .pth (default: shipped)")
    _add_data_args(p)
    p.add_argument("--json", help="write summary and per-image rows to this JSON file")
    p.add_argument("--csv", help="write per-image rows to this CSV file")
    p.add_argument("--clicks", type=int, help="corrective-click protocol: Dice after 0..K simulated clicks "
                   "(both-lung box first, each click at the centre of the largest error)")
    p.set_defaults(func=run_eval)

    q = sub.add_parser("compare", help="evaluate two models on the same images; paired Wilcoxon test")
    q.add_argument("--a", required=True, help="first model (e.g. the FP32 model)")
    q.add_argument("--b", required=True, help="second model (e.g. its INT8 export)")
    _add_data_args(q)
    q.add_argument("--json", help="write the comparison and both evaluations to this JSON file")
    q.set_defaults(func=run_compare)

    r = sub.add_parser("report", help="write a self-contained HTML report of a training run")
    r.add_argument("run_dir", help="run folder (events.jsonl, best/, int8/, summary.json)")
    r.add_argument("-o", "--out", required=True, help="output HTML file")
    r.add_argument("--data", help="image/mask folder for the SSIM maps")
    r.add_argument("--n-ssim", type=int, default=4, help="images shown as SSIM maps (default 4)")
    r.set_defaults(func=run_report)


def _check_inputs(args: argparse.Namespace) -> list[str]:
    """Fail fast (before loading any model) on a missing data folder or exclude file."""
    from engine.errors import LungSamError
    from trainer.training import read_exclude

    if not Path(args.data).is_dir():
        raise LungSamError(f"{args.data}: data folder not found")
    if args.limit is not None and args.limit < 1:
        raise LungSamError(f"--limit must be at least 1 (got {args.limit})")
    return read_exclude(Path(args.exclude)) if args.exclude else []


def _evaluate(model: str | None, args: argparse.Namespace, exclude: list[str], label: str = ""):
    from tqdm import tqdm

    from trainer.evaluation import evaluate_model

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total <= 3:
            return
        if bar is None:
            bar = tqdm(total=total, unit="image", desc=label or None)
        bar.update(done - bar.n)

    try:
        return evaluate_model(model, args.data, prompt=args.prompt, exclude=exclude,
                              device=args.device, limit=args.limit, progress=progress,
                              style=args.style)
    finally:
        if bar is not None:
            bar.close()


def run_clicks(args: argparse.Namespace, exclude: list[str]) -> int:
    from tqdm import tqdm

    from engine.models import load_model
    from trainer.data import find_pairs
    from trainer.evaluation import evaluate_clicks, format_clicks, json_safe

    pairs = find_pairs(args.data, exclude)[: args.limit]
    loaded = load_model(args.model)
    with tqdm(total=len(pairs), unit="image", disable=len(pairs) <= 3) as bar:
        summary = evaluate_clicks(loaded, pairs, args.clicks, args.device, args.style,
                                  lambda done, _total: bar.update(done - bar.n), where=args.data)
    summary["data_dir"] = str(args.data)
    print(format_clicks(summary))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
        print(f"wrote {path}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    exclude = _check_inputs(args)
    if args.clicks is not None:
        if args.prompt != "union" or args.csv:
            from engine.errors import LungSamError

            raise LungSamError("--clicks starts from the both-lung box (--prompt union) and writes --json only")
        return run_clicks(args, exclude)
    result = _evaluate(args.model, args, exclude)
    print(result.summary_table())  # skipped files were logged as warnings while running
    if args.json:
        print(f"wrote {result.to_json(args.json)}")
    if args.csv:
        print(f"wrote {result.to_csv(args.csv)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from trainer.evaluation import compare_results, format_comparison, json_safe

    exclude = _check_inputs(args)
    result_a = _evaluate(args.a, args, exclude, "a")
    result_b = _evaluate(args.b, args, exclude, "b")
    comparison = compare_results(result_a, result_b)
    print(format_comparison(comparison))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"comparison": comparison,
                "a": {"summary": result_a.summary, "rows": result_a.rows},
                "b": {"summary": result_b.summary, "rows": result_b.rows}}
        path.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
        print(f"wrote {path}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from engine.errors import LungSamError
    from trainer.report import write_report

    if args.data and not Path(args.data).is_dir():
        raise LungSamError(f"{args.data}: data folder not found")
    out = write_report(args.run_dir, args.out, data_dir=args.data, n_ssim=args.n_ssim)
    print(f"wrote {out}")
    return 0
