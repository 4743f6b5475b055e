#!/usr/bin/env python
"""Images per second of the training data pipeline: full-size chest X-ray JPEGs against the
512-px copies of scripts/resize_images.py, with 2 and with all cores' DataLoader workers.

    flock /tmp/reclf_heavy.lock python -m research.benchmark_data_loading [--images 64] [--image_size 224]

The images are synthetic, written at run time (no dataset needed): MIMIC-CXR-JPG's size (about
2,500 x 3,000 pixels, 8-bit JPEG, quality 95) with smooth anatomy-like shading and film-grain
noise, so that they compress to a size like the real files'. What is timed is one pass of a
MONAI DataLoader over `chest_xray_transforms(image_size)` (decode, intensity stretch, area resize,
padding) in batches of 16, after one batch that starts the workers; the copies are written once,
before, and their cost is reported apart (it is paid once per dataset, not per epoch).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from monai.data import DataLoader, Dataset
from PIL import Image

from reclf_monai.data import chest_xray_transforms, load_datalist, write_datalist
from reclf_monai.data.preparation.resized_copies import write_resized_copies
from scripts.host_description import cpu_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="synthetic full-size images (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--columns", type=int, default=2500)
    parser.add_argument("--image_size", type=int, default=224, help="the training pipeline's size (default: %(default)s)")
    parser.add_argument("--longest_side", type=int, default=512, help="the copies' longest side (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", help="DataLoader workers to measure (default: 2 and all cores)")
    parser.add_argument("--folder", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    return parser.parse_args(argv)


def synthetic_radiograph(rows: int, columns: int, seed: int) -> np.ndarray:
    """Bright mediastinum and ribs-like bands over dark lungs, plus grain: compresses like a real
    chest X-ray JPEG (a noise-free image would decode unrealistically fast)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    y, x = y / rows, x / columns
    body = 0.35 + 0.5 * np.exp(-(((x - 0.5) / 0.12) ** 2))
    lungs = 0.25 * (np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.45) / 0.25) ** 2)) + np.exp(-(((x - 0.7) / 0.12) ** 2 + ((y - 0.45) / 0.25) ** 2)))
    ribs = 0.06 * np.sin(2 * np.pi * (y * (9 + rng.random()) + 0.3 * np.abs(x - 0.5)))
    image = body - lungs + ribs + rng.normal(0, 0.03, size=(rows, columns)).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def images_per_second(items: list[dict], image_size: int, batch_size: int, workers: int) -> float:
    loader = DataLoader(Dataset(items, chest_xray_transforms(image_size=image_size)), batch_size=batch_size, num_workers=workers)
    batches = iter(loader)
    next(batches)  # starts the workers; not timed
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    worker_counts = args.workers or sorted({min(2, cores), cores})
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        images = folder / "full" / "images"
        images.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for index in range(args.images):
            path = images / f"{index:05d}.jpg"
            if not path.exists():
                Image.fromarray(synthetic_radiograph(args.rows, args.columns, index)).save(path, quality=95)
        sizes = [path.stat().st_size for path in images.glob("*.jpg")]
        print(f"[data] {args.images} synthetic {args.rows} x {args.columns} JPEGs, mean {np.mean(sizes) / 2**20:.2f} MiB ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        full = write_datalist(folder / "full" / "datalist.json", {"training": [{"image": f"images/{path.name}"} for path in sorted(images.glob("*.jpg"))]})
        start = time.perf_counter()
        prepared = write_resized_copies(full, folder / "prepared", args.longest_side, workers=cores, progress=False)
        copy_seconds = time.perf_counter() - start

        sets = {"full-size JPEG": load_datalist(full), f"{args.longest_side}-px copy": load_datalist(prepared)}
        rates = {(name, workers): images_per_second(items, args.image_size, args.batch_size, workers) for name, items in sets.items() for workers in worker_counts}

    print(
        f"training pipeline at {args.image_size} px, {args.images} images, batches of {args.batch_size}; "
        f"{cpu_model()}, {cores} CPUs"
    )
    print(f"{'images':<18}" + "".join(f"{f'{workers} workers img/s':>20}" for workers in worker_counts))
    for name in sets:
        print(f"{name:<18}" + "".join(f"{rates[(name, workers)]:>20.1f}" for workers in worker_counts))
    for workers in worker_counts:
        speed_up = rates[(f"{args.longest_side}-px copy", workers)] / rates[("full-size JPEG", workers)]
        print(f"copies / full-size with {workers} workers: {speed_up:.1f}x")
    print(f"writing the copies once: {copy_seconds:.1f} s for {args.images} images with {cores} processes ({args.images / copy_seconds:.1f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
