"""FP32 vs INT8 side by side: weight-file size, image-encoder latency, box-to-mask latency.

Builds (random, seed 0) or loads a model, writes its FP32 folder and its INT8 export to a
temporary directory, loads both back as the app does and times them interleaved (A, B, A, B,
...) in this one process, so a busy machine slows both alike. Prints only what it measured.

    python benchmarks/int8.py --arch compact --repeats 20
    python benchmarks/int8.py --arch vit_b --repeats 1 --warmup 0
    python benchmarks/int8.py --model /root/lungsam-runs/compact-base/best --image cxr.png
    python benchmarks/int8.py --model resources/models/lungsam-compact-base --threads 2 --json F

With onnxruntime installed (``pip install 'lungsam[onnx]'``) the encoder table gains ONNX
Runtime columns, timed in the same interleaved loop: ``ort_fp32`` (the FP32 model exported by
``lungsam export-onnx``), ``ort_int8`` (that file through ONNX Runtime's ``quantize_dynamic``,
QInt8 weights) and ``ort_ours`` (our INT8 model exported: our numerics as float ONNX ops).
The ``int8_free_linear`` column is the INT8 encoder with every integer Linear layer replaced by
a replay of the output it gave for this image: its time is what the rest (by the paper's
selection FP32: qkv with the adapters merged, attention, norms, GELU, the convs) costs, so
``FP32 / int8_free_linear`` is the most any INT8 Linear kernel can speed the encoder up. The
box-to-mask table has the same column (JSON ``int8_box_free_linear_ms``): the decoder's integer
Linear layers replayed for the benchmark's box.
``--json FILE`` writes the medians (``*_ms``) and minima (``*_min_ms``) of every column.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.adalora import merge_adalora
from engine.models import LoadedModel, export_int8, load_model_folder, save_sam_folder
from engine.predict import CachedEmbedding, EmbeddingCache, Predictor, image_hash
from engine.quant import Int8Linear, insert_fake_quant
from engine.sam import SamConfig, build_sam, prepare_image, preset
from trainer.evaluation import dice


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("compact", "vit_b", "tiny"), default="compact")
    parser.add_argument("--model", type=Path, help="FP32 model folder to use instead of random weights")
    parser.add_argument("--image", type=Path, help="image file (default: a synthetic 1024 px chest-like image)")
    parser.add_argument("--repeats", type=int, default=20, help="timed encoder runs per model")
    parser.add_argument("--box-repeats", type=int, default=50, help="timed box-to-mask calls per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed encoder runs per model first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the measured figures (ms) to this file")
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime columns")
    return parser.parse_args(argv)


def source_model(args: argparse.Namespace) -> tuple[torch.nn.Module, SamConfig, str]:
    """The FP32 model to compare, adapters merged (that is what FP32 would deploy)."""
    if args.model is not None:
        loaded = load_model_folder(args.model)
        if loaded.is_int8:
            raise SystemExit(f"{args.model} is already INT8; give an FP32 model folder")
        sam = copy.deepcopy(loaded.sam)
        merge_adalora(sam)
        return sam, loaded.config, f"weights from {args.model}"
    config = preset(args.arch)
    torch.manual_seed(0)
    return build_sam(config), config, "random weights (seed 0)"


def synthetic_cxr(size: int = 1024) -> np.ndarray:
    """Grey image with two dark lung-like ellipses in a bright body; deterministic."""
    y, x = np.mgrid[0:size, 0:size] / size
    body = 170 + 40 * np.cos(3 * (x - 0.5)) - 30 * y
    lungs = np.zeros_like(body)
    for cx in (0.32, 0.68):
        lungs += (((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2) < 1
    noise = np.random.default_rng(0).normal(0, 6, body.shape)
    return np.clip(body - 110 * lungs + noise, 0, 255).astype(np.uint8)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call for each function, run in turn (A, B, A, B, ...)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    base, config, origin = source_model(args)
    base.eval()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            "fp32": save_sam_folder(Path(tmp) / "fp32", base, config),
            "int8": export_int8(base, config, Path(tmp) / "int8"),
            "int8_fp16": export_int8(base, config, Path(tmp) / "int8_fp16", storage_dtype="float16"),
        }
        size = {k: (p / "weights.safetensors").stat().st_size for k, p in folders.items()}
        models = {k: load_model_folder(folders[k]) for k in ("fp32", "int8")}
        ort = {} if args.no_ort else ort_sessions(models, Path(tmp), args.threads)

    image = synthetic_cxr() if args.image is None else _load(args.image)
    box = np.array([0.1 * image.shape[1], 0.15 * image.shape[0], 0.9 * image.shape[1], 0.88 * image.shape[0]])
    prepared = prepare_image(image, config)
    n_int = sum(isinstance(m, Int8Linear) for m in models["int8"].sam.modules())
    n_layers = len(models["int8"].meta["int8"]["layers"])
    print(
        f"arch {config.name} ({origin}), {config.img_size} px input, image {image.shape[1]}x{image.shape[0]}, "
        f"torch {torch.__version__}, threads {args.threads}"
    )
    print(f"INT8 layers: {n_layers} ({n_int} Linear with integer matmul, {n_layers - n_int} conv dequantised at load)")
    print(
        f"file size      FP32 {mb(size['fp32']):>10}   INT8 {mb(size['int8']):>10}   "
        f"ratio {size['fp32'] / size['int8']:.2f}x   (INT8 + FP16 rest: {mb(size['int8_fp16'])}, "
        f"{size['fp32'] / size['int8_fp16']:.2f}x)"
    )

    features: dict[str, torch.Tensor] = {}

    def encoder(key: str) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                features[key] = models[key].sam.image_encoder(prepared.tensor)
        return run

    encoders = {k: encoder(k) for k in models}
    free_linear = free_linear_encoder(models["int8"], prepared.tensor)

    def run_free_linear() -> None:
        with torch.inference_mode():
            free_linear(prepared.tensor)

    encoders["int8_free_linear"] = run_free_linear
    x = prepared.tensor.numpy()
    for key, ort_model in ort.items():
        encoders[key] = (lambda m: lambda: m.embed_tensor(x))(ort_model)
    enc = interleaved(encoders, args.repeats, args.warmup)
    report("image encoder", enc)
    report_one("  int8_free_linear", enc, "int8_free_linear")
    for key in ort:
        report_one(f"  {key}", enc, key)

    def on_image(model: LoadedModel, embedding: torch.Tensor) -> Predictor:
        """A predictor set on ``image`` from the given embedding (the cache: no encoder run)."""
        predictor = Predictor(model, device="cpu")
        item = CachedEmbedding(embedding.float(), prepared.input_size, prepared.original_size)
        predictor.cache.put(EmbeddingCache.key(image_hash(image), model.model_hash), item)
        predictor.set_image(image)
        return predictor

    predictors = {key: on_image(model, features[key]) for key, model in models.items()}
    results = {}

    def box_to_mask(key: str) -> Callable[[], None]:
        def run() -> None:
            results[key] = predictors[key].predict(boxes=box)
        return run

    free_model = copy.deepcopy(models["int8"])
    free_predictor = on_image(free_model, features["int8"])
    replay_linears(free_model.sam, lambda: free_predictor.predict(boxes=box))
    predictors["int8_free_linear"] = free_predictor
    dec = interleaved({k: box_to_mask(k) for k in predictors}, args.box_repeats, 2)
    report("box-to-mask", dec)
    report_one("  int8_free_linear", dec, "int8_free_linear")
    if args.json is not None:
        figures = {"threads": args.threads, "arch": config.name, "origin": origin, "torch": torch.__version__}
        for prefix, times in (("", enc), ("box_", dec)):
            for key, values in times.items():
                name = key if not prefix else key.replace("fp32", "fp32_box").replace("int8", "int8_box")
                figures[f"{name}_ms"] = round(statistics.median(values) * 1e3, 3)
                figures[f"{name}_min_ms"] = round(min(values) * 1e3, 3)
        figures["file_fp32_bytes"], figures["file_int8_bytes"] = size["fp32"], size["int8"]
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")

    fake = copy.deepcopy(base)
    insert_fake_quant(fake)
    fq_model = LoadedModel(sam=fake, config=config, model_hash="fake-quant", source="memory")
    fq_predictor = Predictor(fq_model, device="cpu")
    fq_predictor.set_image(image)
    fq_result = fq_predictor.predict(boxes=box)
    int8_mask = results["int8"].masks[0, 0]
    print(
        f"agreement      mask Dice INT8 vs fake-quant {dice(int8_mask, fq_result.masks[0, 0]):.4f}, "
        f"INT8 vs FP32 {dice(int8_mask, results['fp32'].masks[0, 0]):.4f}; "
        f"max |low-res logit| diff INT8 vs fake-quant "
        f"{np.abs(results['int8'].low_res_logits - fq_result.low_res_logits).max():.2e}"
    )


def replay_linears(root: torch.nn.Module, run: Callable[[], object]) -> None:
    """Make every :class:`Int8Linear` under ``root`` free: call ``run`` once, recording each
    layer's outputs in call order, then have each layer hand them back in turn instead of
    computing (the values downstream stay real, so the rest costs what it costs)."""
    linears = [m for m in root.modules() if isinstance(m, Int8Linear)]
    outputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in linears}
    hooks = [m.register_forward_hook(lambda mod, _i, out: outputs[id(mod)].append(out)) for m in linears]
    with torch.inference_mode():
        run()
    for hook in hooks:
        hook.remove()
    for m in linears:
        recorded, turn = outputs[id(m)], itertools.count()
        m.forward = (lambda rec, t: lambda _x: rec[next(t) % len(rec)])(recorded, turn)


def free_linear_encoder(model: LoadedModel, x: torch.Tensor) -> torch.nn.Module:
    """A copy of the INT8 image encoder whose integer Linear layers replay, at no cost, the
    outputs they gave for ``x`` (1 x 3 x S x S): everything else runs as in ``model``."""
    encoder = copy.deepcopy(model.sam.image_encoder)
    replay_linears(encoder, lambda: encoder(x))
    return encoder


def ort_sessions(models: dict[str, LoadedModel], tmp: Path, threads: int) -> dict:
    """ONNX Runtime models for the encoder columns (empty, with a note, without onnxruntime)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from engine.onnx_export import OnnxModel, export_onnx
    except ImportError:
        print("onnxruntime not installed: no ONNX Runtime columns (pip install 'lungsam[onnx]')")
        return {}
    export_onnx(models["fp32"], tmp / "ort_fp32")
    export_onnx(models["int8"], tmp / "ort_ours")
    dynamic = tmp / "ort_int8"
    dynamic.mkdir()
    for f in (tmp / "ort_fp32").iterdir():
        if f.suffix == ".onnx":
            quantize_dynamic(f, dynamic / f.name, weight_type=QuantType.QInt8)
        else:
            (dynamic / f.name).write_bytes(f.read_bytes())
    return {k: OnnxModel(tmp / k, threads=threads) for k in ("ort_fp32", "ort_int8", "ort_ours")}


def report_one(label: str, times: dict[str, list[float]], key: str) -> None:
    value, fp32, int8 = (statistics.median(times[k]) for k in (key, "fp32", "int8"))
    print(
        f"{label:<18} {ms(value):>10}   torch FP32 / it {fp32 / value:.2f}x   it / our INT8 "
        f"{value / int8:.2f}x   (min {ms(min(times[key]))})"
    )


def report(label: str, times: dict[str, list[float]]) -> None:
    fp32, int8 = statistics.median(times["fp32"]), statistics.median(times["int8"])
    print(
        f"{label:<14} FP32 {ms(fp32):>10}   INT8 {ms(int8):>10}   speed-up {fp32 / int8:.2f}x   "
        f"(median of {len(times['fp32'])}, interleaved; min {ms(min(times['fp32']))} / {ms(min(times['int8']))})"
    )


def _load(path: Path) -> np.ndarray:
    from engine.imaging import load_image

    return load_image(path).pixels


if __name__ == "__main__":
    main()
