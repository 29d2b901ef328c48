"""One self-contained HTML report of a training run (plots embedded as base64 PNG).

Sections: training curves (``events.jsonl``), adapter ranks (``best/model.json``), the
quantization error analysis of the paper's Fig. 3 (``int8/`` against the FP32 model, read
straight from the safetensors files, so it works without the INT8 runtime), model size and
parameters (``summary.json`` and file sizes) and SSIM maps like the paper's Fig. 2 (with
``data_dir``). Each section that lacks its inputs says "not available" and why; the report
itself only fails when the run folder does not exist.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import LungSamError
from engine.models import MODEL_JSON, WEIGHTS_FILE
from trainer.report import plots
from trainer.training import read_events

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"


class NotAvailable(Exception):
    """A report section cannot be drawn; the message says why (shown in the report)."""


# ----------------------------------------------------------------------------- inputs


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read (%s)", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def weights_path(folder: Path) -> Path:
    """The weight file a model folder's model.json names (default ``weights.safetensors``)."""
    meta = _read_json(folder / MODEL_JSON)
    return folder / (meta.get("weights") or {}).get("file", WEIGHTS_FILE)


def fp32_folder(run_dir: Path, summary: dict[str, Any]) -> Path:
    """``summary.json``'s ``fp32_model`` if that folder exists, else ``run_dir/best``.

    The trainer records the path as given on its command line, so a relative name is tried
    against the run folder and the current folder, and a moved run falls back to ``best/``.
    """
    named = summary.get("fp32_model")
    if named:
        path = Path(named)
        candidates = [path] if path.is_absolute() else [run_dir / path, path]
        for candidate in candidates:
            if (candidate / MODEL_JSON).is_file() or (candidate / WEIGHTS_FILE).is_file():
                return candidate
    return run_dir / "best"


def training_curves(events: list[dict[str, Any]]) -> tuple[tuple[list, list], tuple[list, dict]]:
    """((steps, losses), (epochs, {series name: values})) from the event list."""
    steps = [e for e in events if e.get("event") == "step" and _is_num(e.get("loss"))]
    loss = ([e.get("step", i) for i, e in enumerate(steps)], [float(e["loss"]) for e in steps])
    epochs = [e for e in events if e.get("event") == "epoch"]
    series: dict[str, list[float]] = {}
    styles = next((e.get("mask_styles") for e in events if e.get("event") == "model" and e.get("mask_styles")), None)
    keys = [("val_dice", "union box"), ("val_dice_per_lung", "per-lung boxes")]
    for token in sorted({int(k[len("val_dice_style"):]) for e in epochs for k in e
                         if k.startswith("val_dice_style") and k[len("val_dice_style"):].isdigit()}):
        name = styles[token] if styles and token < len(styles) else f"style {token}"
        keys += [(f"val_dice_style{token}", f"union box, {name}"),
                 (f"val_dice_per_lung_style{token}", f"per-lung boxes, {name}")]
    for key, label in keys:
        values = [float(e[key]) if _is_num(e.get(key)) else math.nan for e in epochs]
        if any(not math.isnan(v) for v in values):
            series[label] = values
    return loss, ([e.get("epoch", i) for i, e in enumerate(epochs)], series)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def final_ranks(run_dir: Path, events: list[dict[str, Any]]) -> tuple[dict[str, int], str, int | None]:
    """(layer -> rank, source, initial rank) from best/model.json (or the INT8 export's record
    of the adapters it merged), else from the last rank event."""
    for folder, key in (("best", "adapter"), ("int8", "merged_adapter")):
        adapter = _read_json(run_dir / folder / MODEL_JSON).get(key) or {}
        pattern = adapter.get("rank_pattern") if isinstance(adapter, dict) else None
        if pattern:
            ranks = {name: int(sum(mask)) for name, mask in pattern.items()}
            initial = max((len(m) for m in pattern.values()), default=None)
            return ranks, f"{folder}/model.json ({key}.rank_pattern)", initial
    rank_events = [e for e in events if e.get("event") == "rank" and e.get("ranks")]
    if rank_events:
        return {k: int(v) for k, v in rank_events[-1]["ranks"].items()}, "last rank event", None
    raise NotAvailable("the run has no AdaLoRA adapters (no rank_pattern in best/model.json, "
                       "no rank events)")


def quantization_errors(int8_dir: Path, fp32_dir: Path) -> dict[str, Any]:
    """Pooled FP32 and dequantized INT8 weights of every layer quantized in ``int8_dir``.

    For each ``<name>.weight_int8`` + ``<name>.weight_scale`` the FP32 ``<name>.weight`` is
    looked up in ``fp32_dir``; the scale may be per tensor or per output channel.
    """
    from safetensors import safe_open

    int8_file, fp32_file = weights_path(int8_dir), weights_path(fp32_dir)
    for path, what in ((int8_file, "INT8"), (fp32_file, "FP32 reference")):
        if not path.is_file():
            raise NotAvailable(f"no {what} model ({path} not found)")
    fp32_parts, deq_parts, layers, missing, worst = [], [], [], [], 0.0
    with safe_open(str(int8_file), framework="numpy") as q_file, \
            safe_open(str(fp32_file), framework="numpy") as f_file:
        f_keys = set(f_file.keys())
        for key in sorted(k for k in q_file.keys() if k.endswith(".weight_int8")):
            name = key[: -len(".weight_int8")]
            scale_key = f"{name}.weight_scale"
            if f"{name}.weight" not in f_keys or scale_key not in q_file.keys():
                missing.append(name)
                continue
            q = q_file.get_tensor(key).astype(np.float32)
            scale = q_file.get_tensor(scale_key).astype(np.float32)
            if scale.size > 1:
                scale = scale.reshape((-1,) + (1,) * (q.ndim - 1))
            ref = f_file.get_tensor(f"{name}.weight").astype(np.float32)
            if ref.shape != q.shape:
                missing.append(name)
                continue
            deq = q * scale
            # Round-to-nearest never errs by more than half a step (no clipping with max scales).
            worst = max(worst, float((np.abs(ref - deq) / (np.broadcast_to(scale, q.shape) / 2)).max()))
            fp32_parts.append(ref.ravel())
            deq_parts.append(deq.ravel())
            layers.append(name)
    if not layers:
        raise NotAvailable(f"{int8_file.name} holds no INT8 weight that matches the FP32 model")
    return {
        "fp32": np.concatenate(fp32_parts),
        "deq": np.concatenate(deq_parts),
        "layers": layers,
        "missing": missing,
        "worst_half_steps": worst,
    }


def ssim_rows(models: list[tuple[str, Any]], data_dir: Path, n: int) -> list[dict[str, Any]]:
    """Predictions (union box from the GT) and SSIM maps against the GT for ``n`` images."""
    from skimage.metrics import structural_similarity

    from engine.predict import EmbeddingCache, Predictor
    from trainer.data import find_pairs
    from trainer.evaluation import load_ground_truth, prompt_boxes

    predictors = [Predictor(m, device="cpu", cache=EmbeddingCache(0)) for _, m in models]
    rows = []
    for pair in find_pairs(data_dir):
        if len(rows) >= n:
            break
        try:
            gt = load_ground_truth(pair)
        except LungSamError as exc:
            log.warning("report: skipping %s: %s", pair.image.name, exc)
            continue
        boxes, _ = prompt_boxes(gt, "union")
        row: dict[str, Any] = {"name": pair.name, "image": gt.image.pixels, "gt": gt.union,
                               "preds": [], "ssim_maps": [], "ssim": []}
        for predictor in predictors:
            predictor.set_image(gt.image.pixels)
            pred = predictor.predict(boxes=boxes).masks[0, 0]
            score, smap = structural_similarity(
                pred.astype(np.float32), gt.union.astype(np.float32), data_range=1.0, full=True
            )
            row["preds"].append(pred)
            row["ssim_maps"].append(smap)
            row["ssim"].append(float(score))
        rows.append(row)
    if not rows:
        raise NotAvailable(f"no usable image/mask pair in {data_dir}")
    return rows


# ----------------------------------------------------------------------------- sections

Html = str


def _img(b64: str, alt: str) -> Html:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(rows: list[tuple[str, Any]]) -> Html:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _na(reason: str) -> Html:
    return f'<p class="na">not available: {html.escape(reason)}</p>'


def section_curves(run_dir: Path, events: list[dict[str, Any]] | None) -> Html:
    if events is None:
        raise NotAvailable(f"{EVENTS_FILE} not found in the run folder")
    (steps, losses), (epochs, series) = training_curves(events)
    if losses:
        parts = [_img(plots.loss_curve(steps, losses), "training loss")]
    else:
        parts = [_na("no step events with a loss")]
    if series:
        best = max(v for vals in series.values() for v in vals if not math.isnan(v))
        parts.append(_img(plots.validation_curve(epochs, series), "validation Dice"))
        parts.append(f"<p>best validation Dice: {best:.4f} over {len(epochs)} epoch(s)</p>")
    else:
        parts.append(_na("no epoch events with val_dice"))
    return "".join(parts)


def section_ranks(run_dir: Path, events: list[dict[str, Any]] | None) -> Html:
    events = events or []
    ranks, source, initial = final_ranks(run_dir, events)
    total = sum(ranks.values())
    parts = [f"<p>{len(ranks)} adapted layers, total rank {total} (from {html.escape(source)})</p>",
             _img(plots.rank_bars(ranks, initial), "final ranks")]
    history = [e for e in events if e.get("event") == "rank" and e.get("ranks")]
    if len(history) > 1:
        key = "step" if all("step" in e for e in history) else "epoch"
        xs = [e.get(key, i) for i, e in enumerate(history)]
        totals = [int(sum(e["ranks"].values())) for e in history]
        parts.append(_img(plots.rank_history(xs, totals, key), "rank history"))
    return "".join(parts)


def section_quantization(run_dir: Path, summary: dict[str, Any]) -> Html:
    int8_dir = run_dir / "int8"
    if not (int8_dir / MODEL_JSON).is_file() and not (int8_dir / WEIGHTS_FILE).is_file():
        raise NotAvailable("the run has no INT8 model (int8/ folder)")
    data = quantization_errors(int8_dir, fp32_folder(run_dir, summary))
    error = data["fp32"] - data["deq"]
    corr = np.corrcoef(data["fp32"], data["deq"])[0, 1] if error.size > 1 else float("nan")
    rows = [
        ("quantized layers compared", len(data["layers"])),
        ("weights compared", f"{error.size:,}"),
        ("error mean (FP32 - INT8)", f"{error.mean():.3e}"),
        ("error std", f"{error.std():.3e}"),
        ("max |error|", f"{np.abs(error).max():.3e}"),
        ("max |error| / half quantization step", f"{data['worst_half_steps']:.4f} (<= 1 expected)"),
        ("correlation FP32 vs INT8", f"{corr:.6f}"),
    ]
    if data["missing"]:
        rows.append(("INT8 layers without FP32 counterpart", ", ".join(data["missing"][:10])))
    return _table(rows) + _img(plots.quant_error_figure(data["fp32"], data["deq"]),
                               "quantization error")


def _count_params(weights: Path) -> int | None:
    if not weights.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights), framework="numpy") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())


def section_size(run_dir: Path, summary: dict[str, Any]) -> Html:
    rows: list[tuple[str, Any]] = []
    for key, label in (("trainable_params", "trainable parameters"),
                       ("total_params", "total parameters")):
        if _is_num(summary.get(key)):
            rows.append((label, f"{int(summary[key]):,}"))
    if _is_num(summary.get("trainable_params")) and _is_num(summary.get("total_params")):
        share = 100.0 * summary["trainable_params"] / max(1, summary["total_params"])
        rows.append(("trainable share", f"{share:.2f} %"))
    fp32_w = weights_path(fp32_folder(run_dir, summary))
    int8_w = weights_path(run_dir / "int8")
    if not any(label == "total parameters" for label, _ in rows):
        count = _count_params(fp32_w)
        if count is not None:
            rows.append(("stored tensor elements (FP32 model)", f"{count:,}"))
    sizes = {}
    for label, path in (("FP32", fp32_w), ("INT8", int8_w)):
        if path.is_file():
            sizes[label] = path.stat().st_size
            rows.append((f"{label} weight file", f"{sizes[label] / 2**20:.2f} MiB ({path.name})"))
    if len(sizes) == 2 and sizes["INT8"]:
        rows.append(("INT8 compression (weight files)", f"{sizes['FP32'] / sizes['INT8']:.2f}x smaller"))
    merged = (_read_json(run_dir / "int8" / MODEL_JSON).get("compression") or {}).get("float32_bytes")
    if _is_num(merged) and sizes.get("INT8"):
        rows.append(("INT8 compression (vs the same merged model in FP32)",
                     f"{merged / sizes['INT8']:.2f}x smaller"))
    if not rows:
        raise NotAvailable("no summary.json parameter counts and no weight files")
    return _table(rows)


def section_ssim(run_dir: Path, data_dir: Path | None, n_ssim: int) -> Html:
    if data_dir is None:
        raise NotAvailable("no data folder given (--data DIR)")
    if n_ssim <= 0:
        raise NotAvailable("n_ssim is 0")
    from engine.models import load_model

    models, notes = [], []
    for label, folder in (("FP32", run_dir / "best"), ("INT8", run_dir / "int8")):
        if not (folder / MODEL_JSON).is_file():
            continue
        try:
            models.append((label, load_model(folder)))
        except Exception as exc:  # the INT8 runtime may be missing: show the FP32 maps anyway
            notes.append(f"{label} model not loaded: {exc}")
    if not models:
        raise NotAvailable("; ".join(notes) or "no model folder in best/ or int8/")
    rows = ssim_rows(models, Path(data_dir), n_ssim)
    names = [label for label, _ in models]
    means = ", ".join(f"{n}: {np.mean([r['ssim'][i] for r in rows]):.4f}" for i, n in enumerate(names))
    parts = [f"<p>{len(rows)} image(s) of {html.escape(str(data_dir))}, union box from the ground "
             f"truth; mean SSIM {means}. Bright = structural agreement.</p>"]
    parts += [_na(n) for n in notes]
    parts.append(_img(plots.ssim_figure(rows, names), "SSIM maps"))
    return "".join(parts)


# ----------------------------------------------------------------------------- assembly

_CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
img{max-width:100%}table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;font-size:.9em}
.na{color:#a33;font-style:italic}"""


def _render(title: str, build: Callable[[], Html]) -> Html:
    try:
        body = build()
    except NotAvailable as exc:
        body = _na(str(exc))
    except Exception as exc:  # a report never fails on one broken piece: say what happened
        log.warning("report section %r failed: %s", title, exc)
        body = _na(f"{type(exc).__name__}: {exc}")
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def write_report(
    run_dir: str | Path, out_html: str | Path, data_dir: str | Path | None = None, n_ssim: int = 4
) -> Path:
    """Write the report of ``run_dir`` to ``out_html`` (one file, no external resources)."""
    from engine.atomic import atomic_write_bytes

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LungSamError(f"{run_dir}: run folder not found")
    summary = _read_json(run_dir / SUMMARY_FILE)
    events_file = run_dir / EVENTS_FILE
    events = read_events(events_file) if events_file.is_file() else None
    data = Path(data_dir) if data_dir is not None else None
    facts = [(k, summary[k]) for k in ("stage", "best_epoch", "best_score") if k in summary]
    header = _table([("run folder", str(run_dir.resolve())), *facts,
                     ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))])
    sections = [
        _render("Training curves", lambda: section_curves(run_dir, events)),
        _render("Adapter ranks", lambda: section_ranks(run_dir, events)),
        _render("Quantization error (FP32 vs INT8)", lambda: section_quantization(run_dir, summary)),
        _render("Model size and parameters", lambda: section_size(run_dir, summary)),
        _render("SSIM maps", lambda: section_ssim(run_dir, data, n_ssim)),
    ]
    title = html.escape(f"LungSAM run report: {run_dir.name}")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body><h1>{title}</h1>{header}"
            + "".join(sections) + "</body></html>\n")
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
