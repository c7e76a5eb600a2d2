"""The predictions format behind `model=cached model.predictions_dir=PATH` (per-image outputs of an external
model such as FC-CLIP, so the paper's FC-CLIP setting is reproducible without this project depending on
detectron2), and its writing side, which every exporter uses.

File format (version 3), one folder per model and dataset, covering the training and validation images:

    meta.json            {"format": "covseg-predictions", "version": 3,
                          "vocabulary": "ade20k_847",        # vocabulary name (benchmark/data/vocabularies)
                          "class_ids": [0, 1, ...],          # dataset class id of each class column (K of them)
                          "void": true,                      # class_logits carry a trailing void column
                          "ensemble": null | {               # FC-CLIP's geometric ensemble (its config and model):
                              "alpha": 0.4,                  #   MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA
                              "beta": 0.8,                   #   MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA
                              "on_valid_mask": false,        #   MODEL.FC_CLIP.ENSEMBLE_ON_VALID_MASK
                              "category_overlap": [1, 0, ...]},  # K ints in class_ids order: the model's
                                                             #   category_overlapping_mask (class shares a name
                                                             #   with a training class: alpha, else beta)
                          "semantic_at_input": false,        # semantic scores on the padded input, then resized
                          "object_threshold": 0.8,           # the producer's panoptic inference thresholds
                          "overlap_threshold": 0.8,
                          "embedding_dim": 768 | null,       # width of the optional mask embeddings
                          "logit_scale": 100.0,              # for `classify` with text_embeddings.npy
                          "producer": "fc-clip convnext-L"}  # free text: model, weights, commit
    text_embeddings.npy  optional (K, D) float32 class embeddings in class_ids order (enables `classify`)
    <image_id>.npz       one per image ("/" in ids written as "__"), with arrays (M queries)
        mask_logits       (M, h, w) float16 (default) or float32  soft mask logits at the model's output
                                    resolution (FC-CLIP: `outputs["pred_masks"]`, 1/4 of the padded input),
                                    not clipped (float16 saturates at +-65504; its error bound is stated by
                                    mask_inference.store_mask_logits; float32 is exact)
        input_size        (2,) int32  (H_in, W_in) the model's resized input before padding
        padded_size       (2,) int32  (H_pad, W_pad) the padded input the (h, w) grid covers
        class_logits      (M, K) or (M, K + 1) float32  class logits in class_ids order, void last when "void":
                                    the softmax over any subset of the columns (and void) is the class
                                    probabilities of the model run with that class list. FC-CLIP: the
                                    in-vocabulary classifier's `outputs["pred_logits"]` before the ensemble
                                    (fcclip/fcclip.py @7791b83 l. 350), void included
        out_vocab_logits  (M, K) float32  only with "ensemble": FC-CLIP's out-of-vocabulary (CLIP) classifier's
                                    logits, its void column removed (l. 365, 367)
        valid_masks       (M,) bool  only with "ensemble" and on_valid_mask: the query's mask has a positive
                                    logit on the CLIP feature grid (l. 355-356, 377)
        embeddings        optional (M, D) float32  mask embeddings (L2-normalised on read)

Reading follows FC-CLIP's inference (benchmark/models/mask_inference.py): the mask logits are upsampled
bilinearly to the padded input, cropped, upsampled to the image and passed through sigmoid; the class
probabilities over an asked vocabulary S (with void) are the softmax of S's columns and void of
`class_logits`, or, with "ensemble", the softmax of FC-CLIP's `mask_cls_results` computed from S's columns
(`mask_inference.fcclip_class_logits`: the geometric ensemble and the void step over S, as FC-CLIP run with S's
class names computes them, bit for bit at one image per batch on the same device and thread count, see its
doc); void then kept apart (`void_probs`). Mask logits are stored rather than
probabilities because FC-CLIP upsamples logits: interpolating probabilities would change mask borders.

Older versions (still read): v2 stores `mask_logits` as uint16 codes over +-`mask_logit_bound` (clipped
beyond) and `class_logprobs`: FC-CLIP's class log-probabilities *after* its ensemble over the whole exported
vocabulary, so a subset vocabulary (eval.vocabulary=seen) is not FC-CLIP run with that subset; exact only with
eval.vocabulary=all (a warning says so). v1: `masks` (M, H, W) bool, `logits` (M, K[+1]) float32, meta key
`no_object`; masks are resized nearest to the image and go through MaskFormer-style inference on binary masks.

Writing: `write_meta`, then `image_arrays` (the one conversion from model outputs to a v3 image file) and
`write_image_predictions` per image, in `export_images`' resumable loop behind `check_folder`. The exporters
use them: benchmark/exporters/fcclip.py (FC-CLIP) and benchmark/exporters/segmenter.py (this project's
segmenters, `python -m benchmark export-predictions`). Reading: benchmark/models/cached/reading.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from benchmark.data.types import Sample, SegmentationDataset
from benchmark.errors import UserError
from benchmark.io import atomic_save_npz, atomic_write_json
from benchmark.models.mask_inference import store_mask_logits

FORMAT = "covseg-predictions"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
SCORE_KEYS = {1: "logits", 2: "class_logprobs", 3: "class_logits"}  # each version's class score array
# sigmoid(64) is 1.0 in float32 and 64 is exact in float16: binary masks of this project's segmenters are
# written as +-64 (and v2's uint16 codes covered +-64 by default)
DEFAULT_MASK_LOGIT_BOUND = 64.0


def prediction_file(directory: Path | str, image_id: str) -> Path:
    return Path(directory) / f"{image_id.replace('/', '__')}.npz"


def ensemble_settings(alpha: float, beta: float, on_valid_mask: bool, category_overlap: Sequence[int]) -> dict:
    """meta.json's "ensemble": FC-CLIP's geometric ensemble settings (see the module doc)."""
    return {"alpha": float(alpha), "beta": float(beta), "on_valid_mask": bool(on_valid_mask),
            "category_overlap": [int(v) for v in category_overlap]}


def write_meta(directory: Path | str, vocabulary: str, class_ids: list[int], void: bool = False,
               embedding_dim: int | None = None, logit_scale: float = 100.0, producer: str = "",
               text_embeddings: np.ndarray | None = None, ensemble: dict | None = None,
               semantic_at_input: bool = False, object_threshold: float = 0.8, overlap_threshold: float = 0.8) -> None:
    """Write meta.json (and text_embeddings.npy when given) of a format v3 predictions folder;
    `ensemble`: FC-CLIP's (`ensemble_settings`), or None; `semantic_at_input`: the producer computes semantic
    scores on its padded input and resizes them; object / overlap threshold: its panoptic inference's
    (benchmark/models/mask_inference.py)."""
    directory = Path(directory)
    if ensemble is not None and len(ensemble["category_overlap"]) != len(class_ids):
        raise ValueError(f"category_overlap has {len(ensemble['category_overlap'])} entries for {len(class_ids)} classes")
    atomic_write_json(directory / "meta.json", {
        "format": FORMAT, "version": VERSION, "vocabulary": vocabulary, "class_ids": [int(i) for i in class_ids],
        "void": bool(void), "ensemble": ensemble, "semantic_at_input": bool(semantic_at_input),
        "object_threshold": float(object_threshold), "overlap_threshold": float(overlap_threshold),
        "embedding_dim": embedding_dim,
        "logit_scale": float(logit_scale), "producer": producer})
    if text_embeddings is not None:
        np.save(directory / "text_embeddings.npy", np.asarray(text_embeddings, dtype=np.float32))


def _numpy(value) -> np.ndarray:
    return torch.as_tensor(value).detach().float().cpu().numpy()


def image_arrays(mask_logits: np.ndarray | torch.Tensor, class_logits: np.ndarray | torch.Tensor,
                 input_size: Sequence[int], padded_size: Sequence[int], embeddings=None, out_vocab_logits=None,
                 valid_masks=None, mask_dtype: str = "float16") -> dict[str, np.ndarray]:
    """One image's v3 arrays (see the module doc) from (M, h, w) mask logits at the output resolution,
    (M, K[+1]) class logits, the (H_in, W_in) unpadded and (H_pad, W_pad) padded input sizes, optional (M, D)
    embeddings, and for an ensemble producer (M, K) out-of-vocabulary logits and optional (M,) valid masks;
    `mask_dtype` float16 or float32 (mask_inference.store_mask_logits)."""
    mask_logits, class_logits = _numpy(mask_logits), _numpy(class_logits)
    if mask_logits.ndim != 3 or class_logits.ndim != 2 or len(mask_logits) != len(class_logits):
        raise ValueError(f"mask logits must be (M, h, w) and class logits (M, K); got {mask_logits.shape} and "
                         f"{class_logits.shape}")
    if not (0 < input_size[0] <= padded_size[0] and 0 < input_size[1] <= padded_size[1]):
        raise ValueError(f"input_size {tuple(input_size)} must lie within padded_size {tuple(padded_size)}")
    arrays = {"mask_logits": store_mask_logits(mask_logits, mask_dtype),
              "input_size": np.asarray(input_size, dtype=np.int32),
              "padded_size": np.asarray(padded_size, dtype=np.int32),
              "class_logits": class_logits}
    if out_vocab_logits is not None:
        arrays["out_vocab_logits"] = _numpy(out_vocab_logits)
        if arrays["out_vocab_logits"].shape[0] != len(class_logits):
            raise ValueError(f"out_vocab_logits {arrays['out_vocab_logits'].shape} has not {len(class_logits)} rows")
    if valid_masks is not None:
        arrays["valid_masks"] = torch.as_tensor(valid_masks).cpu().numpy().astype(bool)
    if embeddings is not None:
        arrays["embeddings"] = _numpy(embeddings)
    return arrays


def write_image_predictions(directory: Path | str, image_id: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one image's arrays (from `image_arrays`) atomically."""
    atomic_save_npz(prediction_file(directory, image_id), **arrays)


def check_folder(directory: Path, producer: str, vocabulary: str) -> None:
    """Refuse to resume into a folder written by another producer, vocabulary or format version."""
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        return
    meta = json.loads(meta_path.read_text())
    theirs = (meta.get("producer"), meta.get("vocabulary"), meta.get("version"))
    if theirs != (producer, vocabulary, VERSION):
        raise UserError(f"{directory} holds predictions of producer {theirs[0]!r} over {theirs[1]} (format "
                        f"v{theirs[2]}), not {producer!r} over {vocabulary} (v{VERSION}); choose another folder")


def export_images(images: list[tuple[SegmentationDataset, Sequence[int]]], directory: Path | str, batch_size: int,
                  predict: Callable[[list[Sample]], list[dict[str, np.ndarray]]], progress=None) -> tuple[int, int]:
    """The resumable loop every exporter shares: `predict(samples)` gives the arrays (`image_arrays`) of the
    given (dataset, indices) images that have no file in `directory` yet, `batch_size` at a time. Returns
    (written, kept). `progress(iterable, desc=, total=)` wraps the loop."""
    todo = [(dataset, index) for dataset, indices in images for index in indices]
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    if progress is not None:
        batches = progress(batches, desc="export predictions", total=len(batches))
    written = kept = 0
    for batch in batches:
        samples = []
        for dataset, index in batch:
            if prediction_file(directory, dataset.image_id(index)).is_file():
                kept += 1
            elif (sample := dataset.load(index)) is not None:  # None: unreadable, skipped (data.on_error=skip)
                samples.append(sample)
        if samples:
            for sample, arrays in zip(samples, predict(samples)):
                write_image_predictions(directory, sample.image_id, arrays)
                written += 1
    return written, kept
