"""`python -m benchmark perf data`: images/s for reading and decoding ADE-like samples (512 px JPEG + 16-bit
TIFF label map) through the project's reader (`SemSegFolder.load`: decode, int64 labels, value check, size
check) against plain PIL reading of the same files in the same run, so the reader's overhead is visible."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.readers import SemSegFolder
from benchmark.data.types import IGNORE_LABEL, Vocabulary


def write_ade_like_samples(folder: Path, count: int, short_side: int, seed: int) -> tuple[Path, Path]:
    """`count` 512x683 (for short_side 512) photo-like JPEGs and piecewise-constant uint16 TIFF label maps
    (A-847 ids and some 65535) in the detectron2 layout; returns (image_dir, label_dir)."""
    import tifffile

    rng = np.random.default_rng(seed)
    height, width = short_side, round(short_side * 4 / 3)
    image_dir, label_dir = folder / "images", folder / "labels"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        # smooth colour field + noise: JPEG decode cost like a photo, unlike flat or pure-noise images
        base = rng.uniform(0, 255, 3) + 60 * np.sin(xx[..., None] / rng.uniform(20, 80) + rng.uniform(0, 6, 3))
        image = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)  # (H, W, 3)
        Image.fromarray(image).save(image_dir / f"sample_{i:05d}.jpg", quality=90)
        # label regions: a coarse random grid of classes upsampled to full size, ~10% ignore
        grid = rng.integers(0, 847, (8, 8)).astype(np.uint16)
        grid[rng.random((8, 8)) < 0.1] = IGNORE_LABEL
        labels = grid[yy * 8 // height, xx * 8 // width]  # (H, W) uint16
        tifffile.imwrite(label_dir / f"sample_{i:05d}.tif", labels)
    return image_dir, label_dir


def read_plain_pil(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with Image.open(image_path) as img:
        image = np.asarray(img.convert("RGB"))
    with Image.open(label_path) as lab:
        labels = np.asarray(lab)
    return image, labels


def images_per_second(read_one, count: int, repeats: int) -> float:
    """Best of `repeats` passes over all samples (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            read_one(i)
        best = min(best, time.perf_counter() - start)
    return count / best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf data", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="samples to generate (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the best is reported (default 3)")
    parser.add_argument("--short-side", type=int, default=512, help="image short side in pixels (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="covseg-perf-data-") as tmp:
        image_dir, label_dir = write_ade_like_samples(Path(tmp), args.images, args.short_side, args.seed)
        dataset = SemSegFolder("ade_like", "val", image_dir, label_dir, Vocabulary.load("ade20k_847"))
        pairs = list(zip(sorted(image_dir.iterdir()), sorted(label_dir.iterdir())))
        rates = {
            "plain PIL (jpg + tif)": images_per_second(lambda i: read_plain_pil(*pairs[i]), len(pairs), args.repeats),
            "SemSegFolder.load": images_per_second(dataset.load, len(dataset), args.repeats),
        }
    baseline = rates["plain PIL (jpg + tif)"]
    height, width = args.short_side, round(args.short_side * 4 / 3)
    print(f"{args.images} ADE-like samples, {width}x{height} JPEG + uint16 TIFF, best of {args.repeats} passes")
    print(f"{'reader':<24} {'images/s':>10} {'vs PIL':>8}")
    for name, rate in rates.items():
        print(f"{name:<24} {rate:>10.1f} {rate / baseline:>7.2f}x")
    return 0
