"""Segment-the-folder throughput: 2048 x 2048 16-bit DICOMs, zero-click, masks into a project.

What the GUI's "Segment folder" does per image, measured end to end on one folder: decode
the DICOM (pixel data, rescale, window) in the background pool, embed, propose both lungs,
score, and save the two lung masks as a model annotation in a fresh project store. The
images are real radiographs (a covidqu_ex or any image folder, ``--source``) or, without one,
synthetic chest-like images, each upscaled to 2048 x 2048 and written as 16-bit MONOCHROME2
DICOMs with a rescale slope and window (what a CR/DX export looks like). Prints images/s,
side by side in the same process: the pipelined run as the GUI and ``lungsam segment --auto``
do it (``--workers`` model workers of one torch thread each, decoding ahead, saving on another
thread), the pipelined run with one model worker on ``--threads`` torch threads, and the same
work done one stage after the other (no prefetch), with the time of each stage.

    python benchmarks/folder_throughput.py --images 40 --threads 2 [--source DATA/covidqu_ex/val/images]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 2048


def write_dicoms(folder: Path, count: int, source: Path | None) -> list[Path]:
    import cv2
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sources = sorted(source.iterdir())[:count] if source else []
    paths = []
    rng = np.random.default_rng(0)
    for i in range(count):
        if sources:
            grey = cv2.imread(str(sources[i % len(sources)]), cv2.IMREAD_GRAYSCALE)
        else:
            grey = np.full((256, 256), 200, np.uint8)
            cv2.ellipse(grey, (80, 128), (45, 90), 0, 0, 360, 60, -1)
            cv2.ellipse(grey, (176, 128), (45, 90), 0, 0, 360, 60, -1)
        big = cv2.resize(grey, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).astype(np.float64)
        stored = np.clip(big * 16 + rng.normal(0, 8, big.shape), 0, 4095).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"img{i:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID = "DX", f"bench{i}"
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.ImagerPixelSpacing = [0.143, 0.143]
        ds.PixelData = stored.tobytes()
        pydicom.dcmwrite(ds.filename, ds, enforce_file_format=True)
        paths.append(Path(ds.filename))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="model (default: the shipped default)")
    parser.add_argument("--source", type=Path, help="folder of real radiographs to upscale into the DICOMs")
    parser.add_argument("--workers", type=int, help="model workers of the pipelined run (default: as the GUI)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from engine.imaging import load_image
    from engine.models import load_model
    from engine.predict import EmbeddingCache, Predictor
    from engine.project import ProjectStore
    from engine.propose import default_workers, propose_many, segment_one

    model = load_model(args.model)
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_dicoms(root, args.images, args.source)
        predictor = Predictor(model, device="cpu", cache=EmbeddingCache(max_bytes=0))
        segment_one(predictor, paths[0], load_image(paths[0]), None)  # warm-up
        figures = {}
        for mode in ("pipelined", "one worker", "sequential"):
            store = ProjectStore.open(root)
            store.register_images(paths)
            stages = {"decode": 0.0, "segment": 0.0, "save": 0.0}
            start = time.perf_counter()
            if mode != "sequential":
                results = propose_many(predictor, paths, workers=workers if mode == "pipelined" else 1)
            else:
                def one_by_one(stages: dict[str, float] = stages):
                    for p in paths:
                        t = time.perf_counter()
                        image = load_image(p)
                        stages["decode"] += time.perf_counter() - t
                        yield segment_one(predictor, p, image, None)
                results = one_by_one()
            def save(result, store=store, stages=stages) -> None:
                t = time.perf_counter()
                store.save_annotation(
                    result.path.name,
                    {"right lung": result.proposal.masks[0], "left lung": result.proposal.masks[1]},
                    "model", model.name, model.model_hash, {"auto": {"quality": result.quality}},
                )
                stages["save"] += time.perf_counter() - t

            # The GUI saves on its own (GUI) thread while the job segments the next image: the
            # pipelined run does the same with one saver thread; the sequential run saves inline.
            saver = ThreadPoolExecutor(1) if mode != "sequential" else None
            pending = []
            for result in results:
                assert result.ok and result.proposal is not None, result.error
                if mode == "sequential":
                    stages["segment"] += result.seconds
                    save(result)
                else:
                    pending.append(saver.submit(save, result))
            for future in pending:
                future.result()
            if saver is not None:
                saver.shutdown()
            seconds = time.perf_counter() - start
            store.close()
            import shutil

            shutil.rmtree(root / ".lungsam")
            figures[mode] = {"images": len(paths), "seconds": seconds, "images_per_s": len(paths) / seconds}
            if mode == "sequential":
                figures[mode]["stage_ms"] = {k: v / len(paths) * 1000 for k, v in stages.items()}
    p, one, s = figures["pipelined"], figures["one worker"], figures["sequential"]
    figures["workers"] = workers
    print(f"model {model.name}, {args.images} DICOMs {SIZE}x{SIZE} 16-bit, {args.threads} threads")
    print(f"pipelined : {p['images_per_s']:.2f} images/s ({p['seconds']:.1f} s), {workers} model workers of 1 torch thread")
    print(f"one worker: {one['images_per_s']:.2f} images/s ({one['seconds']:.1f} s), {args.threads} torch threads")
    print(f"sequential: {s['images_per_s']:.2f} images/s ({s['seconds']:.1f} s); per image: "
          + ", ".join(f"{k} {v:.0f} ms" for k, v in s["stage_ms"].items()))
    print(f"pipelining speed-up: {p['images_per_s'] / s['images_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
