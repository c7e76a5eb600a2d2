"""`python -m benchmark perf predictions`: bytes per image of predictions format v3 (benchmark/models/cached/format.py)
for FC-CLIP on ADE20K-847 validation: 250 queries, 847 classes + void, ADE's typical 512 x 683 image resized
to a 640 short side (FC-CLIP's INPUT.MIN_SIZE_TEST), padded to multiples of 32, masks at stride 4
(160 x 216), with and without the 768-d mask embeddings; the time to read one image back (decode, FC-CLIP's
upsampling to the image) is printed beside.

References in the same run: the same predictions as float32 logits (what FC-CLIP holds before its
post-processing), format v2 (uint16 mask logits over +-64) and v1 (binary masks at the image's size). The
uncompressed sizes are exact; the compressed ones depend on the masks, here synthetic: smooth random fields
(bilinear upsampling of a coarse grid), mostly confidently negative as trained mask logits are, so the numbers
for real FC-CLIP outputs will differ and should be measured on an export (`du -b DIR/*.npz`).

Then the error of the stored mask logits: the share of semantic labels that change against float32 logits,
v2's uint16 codes and v3's float16, at mask logit scales from 1 to 5120 (`print_label_changes`).
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
from benchmark.models.cached.format import image_arrays, write_image_predictions, write_meta
from benchmark.models.cached.segmenter import CachedSegmenter
from benchmark.models.mask_inference import SoftMasks, encode_mask_logits, semantic_from_soft_masks, store_mask_logits

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
    parser.add_argument("--label-images", type=int, default=4,
                        help="images of the label-change measurement (0 = skip it)")
    args = parser.parse_args(argv)
    if min(args.queries, args.classes, args.short_side, args.embedding_dim, args.images) <= 0 or args.label_images < 0:
        raise UserError("--queries, --classes, --short-side, --embedding-dim and --images must be positive, "
                        "--label-images not negative")
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
            logits = torch.randn(args.queries, args.classes + 1)
            embeddings = torch.randn(args.queries, args.embedding_dim)
            out_vocab = torch.randn(args.queries, args.classes)  # FC-CLIP's second classifier (format v3)
            v3 = image_arrays(mask_logits, logits, input_size, padded, embeddings, out_vocab_logits=out_vocab)
            without = {k: v for k, v in v3.items() if k != "embeddings"}
            binary = F.interpolate(mask_logits[None, :, :input_size[0] // 4, :input_size[1] // 4], size=(height, width),
                                   mode="bilinear", align_corners=False)[0] > 0
            candidates = {
                "v3 (float16 mask logits)": without,
                "v3 + embeddings": v3,
                "reference: float32 mask logits": {**without, "mask_logits": mask_logits.numpy()},
                "reference: v2 uint16 mask logits": {**without, "mask_logits": encode_mask_logits(mask_logits.numpy(), 64.0)},
                "reference: v1 binary masks at image size": {"masks": binary.numpy(), "logits": logits.numpy()},
            }
            for name, arrays in candidates.items():
                raw = sum(a.nbytes for a in arrays.values())
                sizes.setdefault(name + " raw", []).append(raw)
                sizes.setdefault(name + " npz", []).append(npz_bytes(**arrays))
            write_image_predictions(folder, f"img{seed}", v3)
        segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": folder, "batch_size": 1}))
        from benchmark.data.types import ImageInput

        for seed in range(args.images):
            image = ImageInput(f"img{seed}", np.zeros((height, width, 3), np.uint8))
            start = time.perf_counter()
            segmenter.image_features([image])[0].soft_masks.probabilities()
            read_ms.append((time.perf_counter() - start) * 1000)

    reference = np.mean(sizes["reference: float32 mask logits npz"])
    print(f"{'bytes per image':45s} {'raw':>11s} {'npz':>11s} {'npz vs float32':>15s} {'A-847 val GB':>13s}")
    for name in ("v3 (float16 mask logits)", "v3 + embeddings", "reference: float32 mask logits",
                 "reference: v2 uint16 mask logits", "reference: v1 binary masks at image size"):
        raw, packed = np.mean(sizes[name + " raw"]), np.mean(sizes[name + " npz"])
        print(f"{name:45s} {raw:11.0f} {packed:11.0f} {packed / reference:15.2f} "
              f"{packed * VALIDATION_IMAGES / 1e9:13.1f}")
    print(f"read one image back (decode + upsampling to {height}x{width}): {np.median(read_ms):.0f} ms median")
    print_label_changes(args.label_images)
    return 0


LABEL_SCALES = (1, 5, 20, 80, 320, 1280, 5120)


def label_changes(stored: np.ndarray, exact: torch.Tensor, class_probs: torch.Tensor, geometry: tuple) -> float:
    """Share of pixels whose semantic label (FC-CLIP's inference, this project's code) differs between the stored
    mask logits and the float32 ones."""
    ids = np.arange(class_probs.shape[1])
    labels = [semantic_from_soft_masks(SoftMasks(array, 64.0, *geometry).probabilities(), class_probs, ids)
              for array in (stored, exact.numpy())]
    return float((labels[0] != labels[1]).mean())


def print_label_changes(images: int, queries: int = 100, classes: int = 150) -> None:
    """Label changes of v2's uint16 logits over +-64 and v3's float16 logits against float32, at mask logit
    scales from 1 to 5120 (the logits are `scale` times a smooth random field, standard deviation about 0.6): `images`
    images of 120 x 160 (input 96 x 128, padded 96 x 128, masks 24 x 32), `queries` x `classes`."""
    if images <= 0:
        return
    geometry = ((96, 128), (96, 128), (120, 160))
    print(f"semantic labels that change against float32 mask logits ({images} image(s), {queries} queries x "
          f"{classes} classes, 120x160 pixels each):")
    print(f"{'mask logit scale':>17s} {'v2 uint16 +-64':>15s} {'v3 float16':>11s}")
    for scale in LABEL_SCALES:
        changes = np.zeros(2)
        for seed in range(images):
            generator = torch.Generator().manual_seed(1000 + seed)
            coarse = torch.randn(1, queries, 6, 8, generator=generator)
            field = F.interpolate(coarse, size=(24, 32), mode="bilinear", align_corners=False)[0]  # smooth, spread ~0.6
            exact = scale * field
            class_probs = torch.randn(queries, classes, generator=generator).mul(3).softmax(-1)
            changes += [label_changes(encode_mask_logits(exact.numpy(), 64.0), exact, class_probs, geometry),
                        label_changes(store_mask_logits(exact.numpy()), exact, class_probs, geometry)]
        print(f"{scale:17d} {changes[0] / images:15.2e} {changes[1] / images:11.2e}")
