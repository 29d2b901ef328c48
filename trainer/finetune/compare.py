"""End of a fine-tune: the current model and the new INT8 model on the held-back images.

Both models are scored with the evaluation code of :mod:`trainer.evaluation` (one tight box
around both lungs from the clinician's corrected mask, Dice at the image's original size) on
exactly the images the run held back (``summary.json`` ``val_names``), and compared with the
paired Wilcoxon signed-rank test and the 95% confidence interval of the mean Dice difference.
:func:`verdict` then says plainly whether the new model is better, not better, or whether
there are too few held-back images to tell; only "better" makes using it the default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import LungSamError

PROMPT = "union"
MIN_HELD_BACK = 5
"""Fewer paired held-back images than this cannot tell two models apart: the Wilcoxon test
on n < 5 pairs cannot reach p < 0.05 (its smallest two-sided p is 2 / 2**n = 0.0625 at n = 4)."""


def groups_for_held_back(val_fraction: float, minimum: int = MIN_HELD_BACK) -> int:
    """How many patients (images without a PatientID count one each) a project needs before
    the split holds back ``minimum`` of them at ``val_fraction`` (the split's own rounding)."""
    n = 2
    while max(1, round(val_fraction * n)) < minimum and n < 100_000:
        n += 1
    return n


def held_back_note(held_back: int, val_fraction: float) -> str | None:
    """Said before a run starts, so no one trains for minutes to hear "too few to tell"."""
    if held_back >= MIN_HELD_BACK:
        return None
    return (f"Only {held_back} image(s) held back: at least {MIN_HELD_BACK} are needed to tell whether the new "
            f"model is better (about {groups_for_held_back(val_fraction)} patients' corrected images at "
            f"{val_fraction:.0%} held back). You can still run it; keeping the current model will be the default.")


@dataclass(frozen=True)
class Verdict:
    """Whether the new model should replace the current one, in words a user reads."""

    kind: str  # "better", "not_better", "unclear", "too_few"
    text: str

    @property
    def better(self) -> bool:
        return self.kind == "better"


def verdict(n: int, diff: float | None, ci95: list[float] | None, p: float | None) -> Verdict:
    """Better only when the whole 95% CI of the Dice difference (new - current) lies above 0."""
    ci = "" if not ci95 else f" (95% CI {ci95[0]:+.4f} to {ci95[1]:+.4f})"
    change = "" if diff is None else f"Dice {diff:+.4f}{ci}"
    if n < MIN_HELD_BACK:
        return Verdict("too_few", f"Too few held-back images to tell ({n}; at least {MIN_HELD_BACK} are needed). "
                       f"{change + '. ' if change else ''}Keep the current model unless you checked the new one.")
    if diff is None:
        return Verdict("unclear", "The held-back images gave no Dice to compare. Keep the current model.")
    if ci95 and ci95[0] > 0:
        return Verdict("better", f"The new model is better: {change}, p = {p:.3g}." if p is not None
                       else f"The new model is better: {change}.")
    if diff <= 0:
        return Verdict("not_better", f"The new model is not better: {change}. Keep the current model.")
    return Verdict("unclear", f"The new model is not clearly better: {change}; the interval includes no "
                   "change. Keep the current model.")


def held_back_pairs(project: Path, names: list[str]):
    """The project's corrected pairs whose names the run held back (latest corrections)."""
    from trainer.data import project_pairs

    wanted = set(names)
    pairs = [p for p in project_pairs(Path(project)) if p.name in wanted]
    if not pairs:
        raise LungSamError("none of the held-back images is still corrected in the project")
    return pairs


def evaluate_on(spec: str, pairs: list, device: str = "cpu",
                progress: Callable[[int, int], None] | None = None, style: str | None = None):
    """Rows (name, dice, ...) of model ``spec`` on the held-back ``pairs``, in mask style
    ``style`` when the model has it (else its first). A pair whose masks cannot be read is
    skipped for both models alike, since the comparison pairs rows by name."""
    from engine.models import load_model
    from engine.sam import mask_styles
    from trainer.evaluation import evaluate_pairs

    model = load_model(spec)
    styles = mask_styles(model.sam)
    return evaluate_pairs(model, pairs, PROMPT, device, progress, style if style in styles else styles[0],
                          where="the held-back images")


def model_facts(spec: str) -> dict[str, Any]:
    """Name, weight-file bytes and INT8 flag of a model, read from its folder (no loading)."""
    from engine.models import read_model_json, resolve_model

    path = resolve_model(spec)
    if path.is_dir():
        meta = read_model_json(path)
        weights = path / meta.get("weights", {}).get("file", "weights.safetensors")
        return {"name": meta.get("name") or path.name, "bytes": weights.stat().st_size if weights.is_file() else None,
                "int8": bool(meta.get("int8")), "path": str(path)}
    return {"name": path.stem, "bytes": path.stat().st_size, "int8": False, "path": str(path)}


def compare_models(project: Path, run_dir: Path, current: str, new: str, device: str = "cpu",
                   progress: Callable[[int, int], None] | None = None, new_name: str | None = None,
                   current_style: str | None = None) -> dict[str, Any]:
    """The end-of-run summary (also written to ``run_dir/comparison.json``). The current model
    and the new one are scored in the mask style the user works in (``current_style``), which
    the new one was fine-tuned in (each falls back to its first style without it)."""
    from trainer.evaluation import compare_results

    stage2 = json.loads((run_dir / "stage2" / "summary.json").read_text())
    stage1_file = run_dir / "stage1" / "summary.json"
    stage1 = json.loads(stage1_file.read_text()) if stage1_file.is_file() else {}
    pairs = held_back_pairs(project, stage2.get("val_names", []))
    total = 2 * len(pairs)

    def tick(offset: int) -> Callable[[int, int], None]:
        """Progress of one model's pass, on the scale of both passes together."""
        def report(done: int, _pairs: int) -> None:
            if progress:
                progress(offset + done, total)
        return report

    before = evaluate_on(current, pairs, device, tick(0), current_style)
    after = evaluate_on(new, pairs, device, tick(len(pairs)), current_style)  # the style it was tuned in
    cmp = compare_results(before, after)
    dice = cmp["metrics"].get("dice", {})
    said = verdict(int(dice.get("n", 0)), dice.get("mean_diff"), dice.get("ci95"), dice.get("p_wilcoxon"))
    summary = {
        "held_back": len(pairs),
        "prompt": PROMPT,
        "dice_before": dice.get("mean_a"),
        "dice_after": dice.get("mean_b"),
        "dice_diff": dice.get("mean_diff"),
        "ci95": dice.get("ci95"),
        "p_wilcoxon": dice.get("p_wilcoxon"),
        "p_note": dice.get("note", ""),
        "n_pairs": dice.get("n", 0),
        "current": {**model_facts(current), "hash": before.summary["model"]["hash"], "style": before.summary["style"]},
        "new": {**model_facts(new), "hash": after.summary["model"]["hash"], **({"name": new_name} if new_name else {})},
        "trainable_params": stage1.get("trainable_params"),
        "total_params": stage1.get("total_params") or stage2.get("total_params"),
        "train_images": len(stage2.get("train_names", [])),
        "val_names": stage2.get("val_names", []),
        "rows": {"before": before.rows, "after": after.rows},
        "verdict": asdict(said),
        "min_held_back": MIN_HELD_BACK,
    }
    from engine.atomic import atomic_write_bytes
    from trainer.evaluation import json_safe

    atomic_write_bytes(run_dir / "comparison.json", json.dumps(json_safe(summary), indent=2).encode())
    return summary
