"""Install a trained compact model as the shipped default and measure it for the model card.

    python tools/ship_default_model.py --base RUNS/v2-stage1/best \
        --stage2 RUNS/v2-stage2/best --data ../shared/data

Writes resources/models/lungsam-compact-base (FP32 base stored as FP16: what users fine-tune
from; a Stage 1 model is merged first), resources/models/lungsam-compact-int8 (Stage 2 result, INT8 export with FP16 for the
non-quantized tensors) and resources/models/DEFAULT, then evaluates and benchmarks the INT8
model (boxes, corrective clicks, robustness) and writes evaluation.json; the model card
(README.md beside it) is written by hand from those numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.imaging import load_image  # noqa: E402
from engine.models import export_int8, load_model_folder, read_model_json, save_sam_folder  # noqa: E402
from engine.predict import EmbeddingCache, Predictor  # noqa: E402
from engine.quant import remove_fake_quant  # noqa: E402
from trainer.evaluation import compare_results, evaluate_model  # noqa: E402
from trainer.training import read_exclude  # noqa: E402

MODELS = ROOT / "resources" / "models"
BASE_NAME, INT8_NAME = "lungsam-compact-base", "lungsam-compact-int8"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.name.endswith(".safetensors"))


def install(base_dir: Path, stage2_dir: Path, models: Path = MODELS) -> tuple[Path, Path, Path]:
    """The base users fine-tune from is ``base_dir``; a Stage 1 model is shipped with its
    adapters merged, so the pane's Stage 1 starts from a plain SAM that already knows the
    clicks and mask styles."""
    from engine.adalora import adapter_modules, merge_adalora

    base = load_model_folder(base_dir)
    if adapter_modules(base.sam):
        merge_adalora(base.sam)
    base_out = save_sam_folder(models / BASE_NAME, base.sam, base.config, storage_dtype="float16",
                               extra_meta={"name": BASE_NAME, "provenance": base.meta.get("provenance"),
                                           "metrics": base.meta.get("metrics")})
    stage2 = load_model_folder(stage2_dir)
    remove_fake_quant(stage2.sam)
    meta = {"name": INT8_NAME, "provenance": stage2.meta.get("provenance"),
            "metrics": stage2.meta.get("metrics")}
    int8_out = export_int8(stage2.sam, stage2.config, models / INT8_NAME, meta, storage_dtype="float16")
    (models / "DEFAULT").write_text(INT8_NAME + "\n")
    return base_out, int8_out, stage2_dir


def latency(model_dir: Path, image: np.ndarray, repeats: int) -> dict[str, float]:
    pred = Predictor(load_model_folder(model_dir), device="cpu", cache=EmbeddingCache(max_bytes=0))
    embed, box = [], []
    pred.set_image(image)
    for _ in range(repeats):
        pred.cache.clear()
        t = time.perf_counter()
        pred.set_image(image)
        embed.append(time.perf_counter() - t)
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        x0, y0 = rng.uniform(0, 0.3 * w), rng.uniform(0, 0.3 * h)
        t = time.perf_counter()
        pred.predict(boxes=[x0, y0, x0 + 0.6 * w, y0 + 0.6 * h])
        box.append(time.perf_counter() - t)
    return {"embed_ms": 1e3 * statistics.median(embed), "box_to_mask_ms": 1e3 * statistics.median(box)}


def dicom_2048(path: Path, source: np.ndarray) -> Path:
    """A 2048x2048 16-bit MONOCHROME2 DICOM made from a real radiograph (for the I/O figure)."""
    import cv2
    from pydicom.uid import SecondaryCaptureImageStorage

    from tests.dicom_factory import write_dicom

    pixels = (cv2.resize(source, (2048, 2048), interpolation=cv2.INTER_CUBIC).astype(np.uint16) * 16)
    write_dicom(path, pixels, patient_id="LATENCY", sop_class=SecondaryCaptureImageStorage,
                window=(2048, 4096), pixel_spacing=[0.15, 0.15])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=Path)
    parser.add_argument("--stage2", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--models-dir", type=Path, default=MODELS,
                        help="install here instead (measure a candidate without replacing the shipped model)")
    parser.add_argument("--install-only", action="store_true", help="install, measure nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    base_out, int8_out, stage2_dir = install(args.base, args.stage2, args.models_dir)
    if args.install_only:
        print(f"installed {base_out} and {int8_out}")
        return
    val = args.data / "covidqu_ex" / "val"
    gb = args.data / "covid_chestxray_gb"
    overlaps = read_exclude(gb / "overlap_with_covidqu_ex.csv")
    results: dict = {"threads": args.threads}
    t = time.perf_counter()
    union = evaluate_model(int8_out, val, "union", device="cpu")
    per_lung = evaluate_model(int8_out, val, "per-lung", device="cpu")
    unseen = evaluate_model(int8_out, gb, "union", exclude=overlaps, device="cpu")
    styles = read_model_json(int8_out).get("mask_styles") or []
    styled_union = {}  # other annotation conventions, on the unseen gb images
    for style in styles[1:]:
        styled_union[style] = evaluate_model(int8_out, gb, "union", exclude=overlaps, device="cpu", style=style)
        results[f"gb_unseen_union_{style}"] = styled_union[style].summary
        results[f"gb_unseen_per_lung_{style}"] = evaluate_model(
            int8_out, gb, "per-lung", exclude=overlaps, device="cpu", style=style).summary
    with tempfile.TemporaryDirectory() as tmp:
        fp32_dir = Path(tmp) / "fp32"
        fp32 = load_model_folder(stage2_dir)
        remove_fake_quant(fp32.sam)
        from engine.adalora import merge_adalora

        merge_adalora(fp32.sam)
        save_sam_folder(fp32_dir, fp32.sam, fp32.config)
        fp32_union = evaluate_model(fp32_dir, val, "union", device="cpu")
        for style, int8_result in styled_union.items():
            results[f"int8_vs_fp32_gb_{style}"] = compare_results(
                evaluate_model(fp32_dir, gb, "union", exclude=overlaps, device="cpu", style=style), int8_result)
        results["size_bytes"] = {"fp32_same_model": folder_bytes(fp32_dir), "int8": folder_bytes(int8_out),
                                 "base_fp16": folder_bytes(base_out)}
        cxr = load_image(sorted((val / "images").iterdir())[0]).pixels
        results["latency_int8_256"] = latency(int8_out, cxr, args.repeats)
        results["latency_fp32_256"] = latency(fp32_dir, cxr, args.repeats)
        dcm = dicom_2048(Path(tmp) / "big.dcm", cxr)
        load_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            big = load_image(dcm).pixels
            load_times.append(time.perf_counter() - t0)
        results["latency_int8_2048_dicom"] = {"load_ms": 1e3 * statistics.median(load_times),
                                              **latency(int8_out, big, 10)}
    comparison = compare_results(fp32_union, union)
    from benchmarks.robustness import main as robustness
    from trainer.data import find_pairs
    from trainer.evaluation import evaluate_clicks

    int8_model = load_model_folder(int8_out)
    results["clicks_covidqu_val"] = evaluate_clicks(int8_model, find_pairs(val), 5, "cpu")
    for style in styles or [None]:
        results[f"clicks_gb_unseen_{style}"] = evaluate_clicks(
            int8_model, find_pairs(gb, overlaps), 5, "cpu", style=style)
    results["robustness_covidqu_val_300"] = robustness(
        ["--model", str(int8_out), "--data", str(val), "--limit", "300", "--threads", str(args.threads)])
    results["eval_seconds"] = time.perf_counter() - t
    for key, res in (("covidqu_val_union", union), ("covidqu_val_per_lung", per_lung),
                     ("gb_unseen_union", unseen), ("covidqu_val_union_fp32", fp32_union)):
        results[key] = res.summary
    results["int8_vs_fp32"] = comparison
    (int8_out / "evaluation.json").write_text(json.dumps(results, indent=2, default=str))
    shutil.copy(int8_out / "evaluation.json", Path(tempfile.gettempdir()) / "lungsam-evaluation.json")
    d = lambda r: r.summary["metrics"]["dice"]  # noqa: E731
    print(json.dumps({
        "covidqu_val_union_dice": d(union)["mean"], "covidqu_val_per_lung_dice": d(per_lung)["mean"],
        "per_lung_mean_of_lungs": per_lung.summary["metrics"].get("dice_lung_mean", {}).get("mean"),
        "gb_unseen_dice": d(unseen)["mean"], "gb_n": unseen.summary["n"],
        **{k: v["metrics"]["dice"]["mean"] for k, v in results.items() if k.startswith("gb_unseen_")},
        "fp32_union_dice": d(fp32_union)["mean"], "int8_vs_fp32_dice": comparison["metrics"]["dice"],
        **{k: {"mean_dice": v["mean_dice"], "worse": v["worse"], "n": v["n"]}
           for k, v in results.items() if k.startswith("clicks_")},
        "robustness": results["robustness_covidqu_val_300"]["table"],
        "sizes": results["size_bytes"], "latency": {k: v for k, v in results.items() if k.startswith("latency")},
    }, indent=2, default=str))


if __name__ == "__main__":
    main()
