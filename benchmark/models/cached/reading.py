"""Reading a predictions folder (the format of benchmark/models/cached/format.py): meta.json checked into a
`PredictionsMeta`, one image's arrays, its class scores as one (M, score_width) tensor, and the optional text
classifier. Every bad file is one DataError naming it."""
from __future__ import annotations

import json
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.errors import DataError, UserError
from benchmark.models.cached.format import (DEFAULT_MASK_LOGIT_BOUND, FORMAT, READABLE_VERSIONS, SCORE_KEYS,
                                            prediction_file)

ENSEMBLE_KEYS = ("alpha", "beta", "on_valid_mask", "category_overlap")


@dataclass(frozen=True)
class PredictionsMeta:
    """A folder's meta.json, checked: the keys every version reads, older versions' defaults filled in."""

    path: Path  # the meta.json file
    fields: dict  # meta.json as written
    version: int
    class_ids: list[int]  # dataset class id of each class column
    void: bool  # the class scores carry a trailing void column (v1: "no_object")
    mask_logit_bound: float  # v2's uint16 mask logit codes cover +-this
    semantic_at_input: bool  # semantic scores on the padded input, then resized
    thresholds: tuple[float, float]  # the producer's panoptic (object, overlap) thresholds
    embedding_dim: int | None  # width of the optional mask embeddings
    logit_scale: float  # of `classify` with text_embeddings.npy
    ensemble: dict | None  # FC-CLIP's geometric ensemble settings (v3), or None

    @property
    def score_names(self) -> list[str]:
        """The arrays an image's class scores are read from, in column order."""
        return [SCORE_KEYS[self.version]] + (["out_vocab_logits"] if self.ensemble else [])

    @property
    def score_width(self) -> int:
        """Columns of one query's class scores: the class logits (+ void), then the out-of-vocabulary logits."""
        return len(self.class_ids) + self.void + (len(self.class_ids) if self.ensemble else 0)


def read_meta(directory: Path) -> PredictionsMeta:
    """meta.json of `directory`, checked (UserError when it is missing, DataError when it is not a readable
    version or its ensemble is incomplete); warns that v2's FC-CLIP scores are exact over the whole vocabulary only."""
    path = directory / "meta.json"
    if not path.is_file():
        raise UserError(f"model.predictions_dir={directory}: no meta.json there (see benchmark/models/cached/format.py)")
    meta = json.loads(path.read_text())
    version = meta.get("version")
    if meta.get("format") != FORMAT or version not in READABLE_VERSIONS:
        raise DataError(f"{path}: format {meta.get('format')} v{version} is not {FORMAT} "
                        f"v{' or v'.join(map(str, READABLE_VERSIONS))}")
    class_ids = [int(i) for i in meta["class_ids"]]
    void = bool(meta.get("void" if version >= 2 else "no_object", False))
    ensemble = meta.get("ensemble") if version >= 3 else None
    if ensemble is not None:
        missing = sorted(set(ENSEMBLE_KEYS) - set(ensemble))
        if missing or not void or len(ensemble["category_overlap"]) != len(class_ids):
            raise DataError(f"{path}: \"ensemble\" needs alpha, beta, on_valid_mask and one category_overlap "
                            f"entry per class ({len(class_ids)}), and \"void\": true"
                            + (f"; missing {', '.join(missing)}" if missing else ""))
    if version == 2 and void:
        warnings.warn(f"model.predictions_dir={directory}: format v2 holds FC-CLIP's class scores after its "
                      f"ensemble over the whole vocabulary, exact only with eval.vocabulary=all; re-export for v3",
                      stacklevel=3)
    return PredictionsMeta(
        path, meta, version, class_ids, void,
        mask_logit_bound=float(meta.get("mask_logit_bound", DEFAULT_MASK_LOGIT_BOUND)),
        semantic_at_input=bool(meta.get("semantic_at_input", False)),
        thresholds=(float(meta.get("object_threshold", 0.8)), float(meta.get("overlap_threshold", 0.8))),
        embedding_dim=meta.get("embedding_dim"), logit_scale=float(meta.get("logit_scale", 100.0)),
        ensemble=ensemble)


def read_text_embeddings(directory: Path) -> torch.Tensor | None:
    """(K, D) the exported text classifier in class_ids order, or None when the folder has none."""
    path = directory / "text_embeddings.npy"
    return torch.from_numpy(np.load(path)) if path.is_file() else None


def read_image_predictions(directory: Path | str, image_id: str, names: list[str] | None = None
                           ) -> dict[str, np.ndarray]:
    """One image's exported arrays (those of `names` it holds, default all)."""
    path = prediction_file(directory, image_id)
    if not path.is_file():
        raise DataError(f"no predictions for image '{image_id}': {path} is missing; export every training and "
                        f"validation image of the stream (benchmark/models/cached/format.py)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (names or data.files) if name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, foreign
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        raise DataError(f"{path}: unreadable predictions ({reason}); export this image again") from None


def class_scores(meta: PredictionsMeta, arrays: dict[str, np.ndarray], path: Path) -> torch.Tensor:
    """(M, score_width) float32 one image's class scores: `class_logits` (v2 `class_logprobs`, v1 `logits`),
    then `out_vocab_logits` with an ensemble."""
    missing = [name for name in meta.score_names if name not in arrays]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} (format v{meta.version}, benchmark/models/cached/format.py)")
    scores = torch.cat([torch.from_numpy(arrays[name].astype(np.float32)) for name in meta.score_names], dim=1)
    if scores.shape[1] != meta.score_width:
        raise DataError(f"{path}: class scores have {scores.shape[1]} columns, meta.json implies {meta.score_width}")
    return scores


def mask_embeddings(arrays: dict[str, np.ndarray], num_queries: int) -> torch.Tensor:
    """(M, D) the exported mask embeddings, L2-normalised; (M, 0) when the image has none."""
    if "embeddings" not in arrays:
        return torch.zeros(num_queries, 0)
    return F.normalize(torch.from_numpy(arrays["embeddings"].astype(np.float32)), dim=-1)


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """(M, H, W) bool format v1 masks resized nearest to the image."""
    if masks.shape[1:] == (height, width):
        return masks
    resized = F.interpolate(torch.from_numpy(masks)[None].float(), size=(height, width), mode="nearest")[0]
    return resized.numpy() > 0.5
