"""Trainable parameters of Stage 1 (AdaLoRA adapters + mask decoder) against full fine-tuning.

    python benchmarks/params.py --arch vit_b compact

Builds each architecture, wraps it exactly as `lungsam train stage1` does (trainer.training.stages.stage1
with its default config: qkv adapters at r_max 48) and counts parameters with requires_grad.
The paper reports 16.6x fewer trainable parameters than full fine-tuning for SAM ViT-B.
"""

from __future__ import annotations

import argparse

from engine.sam import build_sam, count_parameters, preset
from trainer.training import Stage1Config, stage1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["vit_b", "compact"])
    args = parser.parse_args()
    for arch in args.arch:
        model = build_sam(preset(arch))
        full = count_parameters(model)
        stage1(model, preset(arch), Stage1Config(), epochs=15, steps_per_epoch=100, provenance={})
        trainable = count_parameters(model, trainable_only=True)
        decoder = count_parameters(model.mask_decoder, trainable_only=True)
        print(f"{arch:<8} full fine-tuning {full / 1e6:7.2f} M | Stage 1 trainable {trainable / 1e6:6.2f} M "
              f"(adapters {(trainable - decoder) / 1e6:.2f} M at r_max 48, decoder {decoder / 1e6:.2f} M) | "
              f"{full / trainable:5.1f}x fewer")


if __name__ == "__main__":
    main()
