"""ONNX Runtime's masks against our Predictor's, per mask style, on real images.

    python benchmarks/onnx_agreement.py --model lungsam-compact-int8 \
        --data ../shared/data/covidqu_ex/val --limit 50 --json F

Exports ``--model`` with ``lungsam export-onnx`` (or takes ``--onnx DIR``), then per image and
style, with ``lungsam eval``'s union box (tight around both lungs, masks not restricted to it,
as ONNX Runtime's are not), reports the Dice of three pairs:

* ``ort``: ONNX Runtime's encoder and decoder against our Predictor (what a deployer gets);
* ``ort_decoder``: ONNX Runtime's decoder on our own embedding (the decoder file alone);
* ``ulp_floor``: our Predictor against itself with each encoder input value moved by at most
  one float32 ulp (a random half of them, up or down).

Why the third: an INT8 model quantises every Linear input per token, ``round(x / s)``, and a
value lying within float rounding of a half step goes to the other integer when any float
operation before it rounds differently (ONNX Runtime's matmul, softmax, layer norm, erf and
conv kernels do, by one or a few ulp); one such flip changes later quantisation inputs by a
whole step and spreads. ``ulp_floor`` is that spread with our own kernels: what no other float
implementation of the same INT8 graph can beat on average. For an FP32 model all three are 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models import load_model
from engine.onnx_export import OnnxEmbedding, OnnxModel, export_onnx
from engine.predict import CachedEmbedding, EmbeddingCache, Predictor, image_hash
from engine.sam import prepare_image
from trainer.data import find_pairs
from trainer.evaluation import dice, load_ground_truth, prompt_boxes

PAIRS = ("ort", "ort_decoder", "ulp_floor")


def one_ulp_apart(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``x`` with a random half of its values moved one float32 ulp up or down."""
    step = torch.from_numpy(rng.choice([-1.0, 0.0, 0.0, 1.0], size=x.shape).astype(np.float32))
    moved = torch.nextafter(x, torch.where(step > 0, torch.inf, -torch.inf))
    return torch.where(step == 0, x, moved)


def perturbed_predictor(model, image: np.ndarray, rng: np.random.Generator) -> Predictor:
    """A Predictor whose embedding of ``image`` comes from a one-ulp-perturbed encoder input
    (placed in its cache under the image's key, so ``set_image`` uses it)."""
    prepared = prepare_image(image, model.config)
    with torch.inference_mode():
        features = model.sam.image_encoder(one_ulp_apart(prepared.tensor, rng)).float()
    cache = EmbeddingCache()
    cache.put(EmbeddingCache.key(image_hash(image), model.model_hash),
              CachedEmbedding(features, prepared.input_size, prepared.original_size))
    predictor = Predictor(model, device="cpu", cache=cache)
    predictor.set_image(image)
    return predictor


def measure(model_spec: str, data: Path, limit: int | None, onnx_dir: Path, threads: int) -> dict:
    model = load_model(model_spec)
    ours = Predictor(model, device="cpu", cache=EmbeddingCache(max_bytes=0))
    runtime = OnnxModel(onnx_dir, threads=threads)
    styles = ours.mask_styles
    scores: dict[str, dict[str, list[float]]] = {s: {p: [] for p in PAIRS} for s in styles}
    embedding_diff: list[float] = []
    rng = np.random.default_rng(0)
    pairs = find_pairs(data)[:limit]
    for pair in pairs:
        gt = load_ground_truth(pair)
        image = gt.image.pixels
        box = prompt_boxes(gt, "union")[0][0]
        ours.set_image(image)
        item, _ = ours.embed(image)
        ort_embedding = runtime.embed(image)
        ours_in_ort = OnnxEmbedding(item.features.numpy(), item.input_size, item.original_size)
        embedding_diff.append(float(np.abs(ort_embedding.features - item.features.numpy()).max()))
        noisy = perturbed_predictor(model, image, rng)
        for style in styles:
            reference = ours.predict(boxes=box, style=style, restrict=False).masks[0, 0]
            row = scores[style]
            row["ort"].append(dice(runtime.predict(ort_embedding, box=box, style=style)[0], reference))
            row["ort_decoder"].append(dice(runtime.predict(ours_in_ort, box=box, style=style)[0], reference))
            row["ulp_floor"].append(dice(noisy.predict(boxes=box, style=style, restrict=False).masks[0, 0], reference))
    summary = {
        style: {
            pair: {"min": min(v), "mean": statistics.fmean(v), "below_0.999": sum(x < 0.999 for x in v)}
            for pair, v in rows.items()
        }
        for style, rows in scores.items()
    }
    return {"model": model_spec, "int8": model.is_int8, "data": str(data), "n": len(pairs),
            "embedding_max_abs_diff": {"max": max(embedding_diff), "mean": statistics.fmean(embedding_diff)},
            "styles": summary}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lungsam-compact-int8")
    parser.add_argument("--data", required=True, type=Path, help="folder with images/ and masks/")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--onnx", type=Path, help="an existing export of --model (default: export to a temporary folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = args.onnx
        if onnx_dir is None:
            onnx_dir = Path(tmp) / "onnx"
            export_onnx(load_model(args.model), onnx_dir)
        result = measure(args.model, args.data, args.limit, onnx_dir, args.threads)
    diff = result["embedding_max_abs_diff"]
    print(f"{args.model} on {result['n']} images of {args.data}; embedding max |ORT - ours| "
          f"{diff['max']:.2g} (mean over images {diff['mean']:.2g})")
    print(f"{'style':<12} {'pair':<12} {'min Dice':>9} {'mean Dice':>10} {'< 0.999':>8}")
    for style, rows in result["styles"].items():
        for pair, figures in rows.items():
            print(f"{style:<12} {pair:<12} {figures['min']:>9.5f} {figures['mean']:>10.5f} {figures['below_0.999']:>8}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
