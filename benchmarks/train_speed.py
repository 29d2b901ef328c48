"""Training throughput per stage (images/s), data-loading share and peak memory.

    python benchmarks/train_speed.py --arch compact --steps 20
    python benchmarks/train_speed.py --arch vit_b --steps 3 --batch-size 2
    python benchmarks/train_speed.py --arch vit_b --device cuda --steps 5 --batch-size 8
    python benchmarks/train_speed.py --pipeline --model FP32_MODEL_FOLDER   # S1+S2 on 50 images

The step timing splits each step into data (batch assembly, augmentation, prompts) and
compute (forward, backward, optimizer), so "data loading is not the bottleneck" is a number.
``--pipeline`` runs the default Stage 1 + Stage 2 presets on up to 50 covid_chestxray_gb images
(near-duplicates of COVID-QU-Ex excluded: 44 remain) and prints the wall time of each stage.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from engine.sam import build_sam, preset
from trainer.data import find_pairs, load_set
from trainer.training import (
    BaseStageConfig,
    EventWriter,
    LoopConfig,
    Stage1Config,
    Stage2Config,
    Trainer,
    base_stage,
    stage1,
    stage2,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_stage(stage: str, arch: str, data, steps: int, batch: int, tmp: Path, device: str = "cpu") -> dict[str, float]:
    torch.manual_seed(0)
    config = preset(arch)
    model = build_sam(config)
    if stage == "base":
        groups, hooks = base_stage(model, config, BaseStageConfig(), {})
    else:
        groups, hooks = stage1(model, config, Stage1Config(), epochs=15, steps_per_epoch=10_000, provenance={})
        if stage == "stage2":
            groups, hooks = stage2(model, config, Stage2Config(), {})
    loop = LoopConfig(epochs=1, batch_size=batch)
    trainer = Trainer(model, config, groups, data, data, tmp / stage, loop, EventWriter(None), hooks, device, False)
    original = trainer.forward.forward
    compute: list[float] = []

    def timed_forward(*args, **kwargs):
        timed_forward.start = time.perf_counter()
        return original(*args, **kwargs)

    trainer.forward.forward = timed_forward
    totals = []
    for i in range(steps + 1):
        indices = trainer._batch(0, i % trainer.steps_per_epoch)[0]
        start = time.perf_counter()
        trainer.train_step(indices)
        if device == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter()
        if i:  # the first step warms up allocators and kernels
            totals.append(end - start)
            compute.append(end - timed_forward.start)
    step = statistics.median(totals)
    data_share = 1 - statistics.median(compute) / step
    return {"images_per_s": batch / step, "step_s": step, "data_share": data_share}


def pipeline(model: str, threads: int) -> None:
    from trainer.training import TrainRequest, read_exclude, run_stage

    gb = DATA / "covid_chestxray_gb"
    exclude = set(read_exclude(gb / "overlap_with_covidqu_ex.csv"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for sub in ("images", "masks", "masks_left", "masks_right"):
            (root / sub).mkdir(parents=True)
        pairs = [p for p in find_pairs(gb) if p.image.name not in exclude][:50]
        for p in pairs:
            for src, sub in ((p.image, "images"), (p.mask, "masks"), (p.mask_left, "masks_left"),
                             (p.mask_right, "masks_right")):
                if src is not None:
                    (root / sub / src.name).symlink_to(src)
        times = {}
        for stage, start_model in (("stage1", model), ("stage2", str(Path(tmp) / "stage1" / "best"))):
            t = time.perf_counter()
            run_stage(TrainRequest(stage=stage, data=root, val=None, val_fraction=0.2, out=Path(tmp) / stage,
                                   model=start_model, threads=threads, progress=False))
            times[stage] = time.perf_counter() - t
        print(f"pipeline on {len(pairs)} images (80/20 split), default presets, {threads} thread(s): "
              f"stage1 {times['stage1']:.0f} s, stage2 {times['stage2']:.0f} s, "
              f"total {sum(times.values()) / 60:.1f} min; peak RSS {peak_rss_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="compact")
    parser.add_argument("--stages", default="base,stage1,stage2")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--data", type=Path, default=DATA / "covidqu_ex" / "val", help="image/mask folder")
    parser.add_argument("--pipeline", action="store_true")
    parser.add_argument("--model", help="FP32 model folder for --pipeline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pipeline:
        pipeline(args.model, args.threads)
        return
    config = preset(args.arch)
    t = time.perf_counter()
    data = load_set(find_pairs(args.data)[: args.images], config.img_size)
    print(f"{args.arch}: {len(data)} images decoded to {config.img_size} px in {time.perf_counter() - t:.1f} s "
          f"(once per run, cached); threads {args.threads}, batch {args.batch_size}, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages.split(","):
            r = time_stage(stage, args.arch, data, args.steps, args.batch_size, Path(tmp), args.device)
            print(f"{stage:<7} {r['images_per_s']:7.2f} images/s  step {r['step_s']:.2f} s  "
                  f"data share {r['data_share'] * 100:4.1f} %  peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
