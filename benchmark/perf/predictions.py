"""`python -m benchmark perf predictions`: bytes per image of predictions format v2 (benchmark/models/cached.py)
for FC-CLIP on ADE20K-847 validation: 250 queries, 847 classes + void, ADE's typical 512 x 683 image resized
to a 640 short side (FC-CLIP's INPUT.MIN_SIZE_TEST), padded to multiples of 32, masks at stride 4
(160 x 216), with and without the 768-d mask embeddings; the time to read one image back (decode, FC-CLIP's
upsampling to the image) is printed beside.

References in the same run: the same predictions as float32 logits (what FC-CLIP holds before its
post-processing) and format v1 (binary masks at the image's size). The uncompressed sizes are exact; the
compressed ones depend on the masks, here synthetic: smooth random fields (bilinear upsampling of a coarse
grid), mostly confidently negative as trained mask logits are, so the numbers for real FC-CLIP outputs will
differ and should be measured on an export (`du -b DIR/*.npz`).
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmark.errors import UserError
from benchmark.models.cached import CachedSegmenter, image_arrays, write_image_predictions, write_meta

VALIDATION_IMAGES = 2000  # ADE20K-847 validation


def synthetic_mask_logits(queries: int, grid: tuple[int, int], seed: int) -> torch.Tensor:
    """(queries, *grid) smooth mask logits: a coarse random field upsampled bilinearly, mostly below zero."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, queries, max(1, grid[0] // 16), max(1, grid[1] // 16), generator=generator)
    smooth = F.interpolate(coarse, size=grid, mode="bilinear", align_corners=False)[0]
    return 8 * smooth - 10 + 0.3 * torch.randn(queries, *grid, generator=generator)


def npz_bytes(**arrays: np.ndarray) -> int:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return len(buffer.getvalue())


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--image-size {text} is not HEIGHTxWIDTH, e.g. 512x683") from None
    if height <= 0 or width <= 0:
        raise UserError(f"--image-size {text} must be positive")
    return height, width


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf predictions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=250, help="mask queries per image (FC-CLIP: 250)")
    parser.add_argument("--classes", type=int, default=847, help="classes, void excluded (A-847: 847)")
    parser.add_argument("--image-size", default="512x683", help="original image HEIGHTxWIDTH (ADE20K typical)")
    parser.add_argument("--short-side", type=int, default=640, help="model input short side (FC-CLIP: 640)")
    parser.add_argument("--embedding-dim", type=int, default=768, help="mask embedding width (ConvNeXt-L CLIP: 768)")
    parser.add_argument("--images", type=int, default=3, help="synthetic images measured (mean reported)")
    args = parser.parse_args(argv)
    if min(args.queries, args.classes, args.short_side, args.embedding_dim, args.images) <= 0:
        raise UserError("--queries, --classes, --short-side, --embedding-dim and --images must be positive")
    height, width = parse_size(args.image_size)
    scale = args.short_side / min(height, width)
    input_size = (round(height * scale), round(width * scale))
    padded = tuple(-(-side // 32) * 32 for side in input_size)
    grid = (padded[0] // 4, padded[1] // 4)
    print(f"{args.queries} queries x {args.classes}+1 classes; image {height}x{width} -> input {input_size[0]}x"
          f"{input_size[1]} padded {padded[0]}x{padded[1]} -> masks {grid[0]}x{grid[1]}; {args.images} image(s)")

    sizes: dict[str, list[int]] = {}
    read_ms: list[float] = []
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_meta(folder, "perf", list(range(args.classes)), void=True, embedding_dim=args.embedding_dim)
        for seed in range(args.images):
            mask_logits = synthetic_mask_logits(args.queries, grid, seed)
            logprobs = torch.randn(args.queries, args.classes + 1).log_softmax(-1)
            embeddings = torch.randn(args.queries, args.embedding_dim)
            v2 = image_arrays(mask_logits, logprobs, input_size, padded, embeddings)
            without = {k: v for k, v in v2.items() if k != "embeddings"}
            binary = F.interpolate(mask_logits[None, :, :input_size[0] // 4, :input_size[1] // 4], size=(height, width),
                                   mode="bilinear", align_corners=False)[0] > 0
            candidates = {
                "v2 (uint16 mask logits)": without,
                "v2 + embeddings": v2,
                "reference: float32 mask logits": {**without, "mask_logits": mask_logits.numpy()},
                "reference: v1 binary masks at image size": {"masks": binary.numpy(), "logits": logprobs.numpy()},
            }
            for name, arrays in candidates.items():
                raw = sum(a.nbytes for a in arrays.values())
                sizes.setdefault(name + " raw", []).append(raw)
                sizes.setdefault(name + " npz", []).append(npz_bytes(**arrays))
            write_image_predictions(folder, f"img{seed}", v2)
        segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": folder, "batch_size": 1}))
        from benchmark.data.types import ImageInput

        for seed in range(args.images):
            image = ImageInput(f"img{seed}", np.zeros((height, width, 3), np.uint8))
            start = time.perf_counter()
            segmenter.image_features([image])[0].soft_masks.probabilities()
            read_ms.append((time.perf_counter() - start) * 1000)

    reference = np.mean(sizes["reference: float32 mask logits npz"])
    print(f"{'bytes per image':45s} {'raw':>11s} {'npz':>11s} {'npz vs float32':>15s} {'A-847 val GB':>13s}")
    for name in ("v2 (uint16 mask logits)", "v2 + embeddings", "reference: float32 mask logits",
                 "reference: v1 binary masks at image size"):
        raw, packed = np.mean(sizes[name + " raw"]), np.mean(sizes[name + " npz"])
        print(f"{name:45s} {raw:11.0f} {packed:11.0f} {packed / reference:15.2f} "
              f"{packed * VALIDATION_IMAGES / 1e9:13.1f}")
    print(f"read one image back (decode + upsampling to {height}x{width}): {np.median(read_ms):.0f} ms median")
    return 0
