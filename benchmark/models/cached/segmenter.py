"""`model=cached`: the frozen base segmenter as a reader of predictions exported by an external model
(FC-CLIP, MaskFormer, ...; the format in benchmark/models/cached/format.py). At each step the producing model's
own ensemble and post-processing run over the step's vocabulary (benchmark/models/mask_inference.py), as if it
had been given those class names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import Vocabulary
from benchmark.errors import DataError, UserError
from benchmark.models.base import Image, Segmenter
from benchmark.models.cached.format import SCORE_KEYS, prediction_file
from benchmark.models.cached.reading import (class_scores, mask_embeddings, read_image_predictions, read_meta,
                                             read_text_embeddings, resize_masks)
from benchmark.models.features import ImageFeatures
from benchmark.models.mask_inference import SoftMasks, fcclip_class_logits


class CachedSegmenter(Segmenter):
    """The frozen base segmenter as a reader of exported predictions (model.kind=cached)."""

    def __init__(self, config, seed: int = 0, device: str = "cpu", cache_dir: Path | str | None = None) -> None:
        if not config.predictions_dir:
            raise UserError("model=cached needs model.predictions_dir=PATH (a folder written in the format of "
                            "benchmark/models/cached/format.py)")
        self.config = config
        self.seed = seed
        self.device = device  # FC-CLIP's upsampling and inference of soft masks run there
        self.cache_dir = cache_dir  # disk cache of embedders run on these proposals (the predictions are on disk)
        self.directory = Path(config.predictions_dir).expanduser()
        self.predictions_meta = read_meta(self.directory)
        self.meta = self.predictions_meta.fields
        self.version = self.predictions_meta.version
        self.class_ids = self.predictions_meta.class_ids
        self.column = {class_id: c for c, class_id in enumerate(self.class_ids)}  # dataset class id -> column
        self.void = self.predictions_meta.void
        self.mask_logit_bound = self.predictions_meta.mask_logit_bound  # v2's codes
        self.semantic_at_input = self.predictions_meta.semantic_at_input
        self.thresholds = self.predictions_meta.thresholds
        self.embed_dim = self.predictions_meta.embedding_dim
        self.logit_scale = self.predictions_meta.logit_scale
        self.ensemble = self.predictions_meta.ensemble  # FC-CLIP's settings, or None
        if self.ensemble is not None:
            self.category_overlap = torch.tensor(self.ensemble["category_overlap"], dtype=torch.long)
        # one row of class scores per query: the class logits (+ void), then the out-of-vocabulary logits
        self.score_width = self.predictions_meta.score_width
        self._text = read_text_embeddings(self.directory)
        self.digest = f"cached-{self.directory.resolve()}"
        self._feature_cache: dict[str, ImageFeatures] = {}
        self.cache_size = 4096

    def image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """Each image's exported masks (soft, v2 and v3; binary, v1), class scores (`class_scores`) and
        normalised embeddings; `proposals` shows each pixel's best-scoring mask."""
        return [self._image_features(sample) for sample in samples]

    def _image_features(self, sample: Image) -> ImageFeatures:
        path = prediction_file(self.directory, sample.image_id)
        arrays = read_image_predictions(self.directory, sample.image_id)
        logits = class_scores(self.predictions_meta, arrays, path)
        on_valid_mask = bool(self.ensemble and self.ensemble["on_valid_mask"])
        valid = arrays.get("valid_masks") if on_valid_mask else None
        if on_valid_mask and valid is None:
            raise DataError(f"{path}: no valid_masks, which meta.json's ensemble.on_valid_mask needs")
        all_columns = list(range(len(self.class_ids)))
        confidence = self._logits_over(logits, all_columns, None if valid is None else torch.from_numpy(valid)) \
            .softmax(dim=1)[:, :len(self.class_ids)].max(dim=1).values  # (M,)
        size = (sample.height, sample.width)
        if self.version >= 2:
            soft = SoftMasks(arrays["mask_logits"], self.mask_logit_bound,
                             tuple(arrays["input_size"].tolist()), tuple(arrays["padded_size"].tolist()), size,
                             str(self.device), self.semantic_at_input, *self.thresholds, valid=valid)
            if len(soft) != len(logits):
                raise DataError(f"{path}: {len(soft)} masks but {len(logits)} rows of class scores")
            mask_probs = soft.probabilities()  # (M, H, W)
            soft.has_pixels(mask_probs)  # kept with the features: which masks are empty at the 0.5 cut
            owner = (confidence.to(mask_probs.device)[:, None, None] * mask_probs).argmax(0).cpu().numpy() \
                if len(soft) else None
            proposals = np.where((mask_probs >= 0.5).any(0).cpu().numpy(), owner, -1) if len(soft) else None
            masks = None
        else:
            soft = None
            masks = resize_masks(arrays["masks"].astype(bool), *size)  # (M, H, W)
            weighted = np.where(masks, confidence.numpy()[:, None, None] + 1.0, 0.0)
            proposals = np.where(masks.any(0), weighted.argmax(0), -1) if len(masks) else None
        if proposals is None:
            proposals = np.full(size, -1, dtype=np.int32)
        return ImageFeatures(proposals.astype(np.int32), mask_embeddings(arrays, len(logits)),
                             instance_proposals=True, masks=masks, logits=logits, soft_masks=soft)

    def class_scores(self, image_id: str) -> torch.Tensor:
        """(M, score_width) one image's exported class scores alone (its masks are not read)."""
        arrays = read_image_predictions(self.directory, image_id, [SCORE_KEYS[self.version], "out_vocab_logits"])
        return class_scores(self.predictions_meta, arrays, prediction_file(self.directory, image_id))

    def cached_image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """`image_features` with a bounded in-memory cache keyed by image id and size."""
        keys = [f"{s.image_id}:{s.height}x{s.width}" for s in samples]
        missing = [i for i, key in enumerate(keys) if key not in self._feature_cache]
        fresh = dict(zip(missing, self.image_features([samples[i] for i in missing]))) if missing else {}
        for i, feats in fresh.items():
            if len(self._feature_cache) < self.cache_size:
                self._feature_cache[keys[i]] = feats
        return [fresh[i] if i in fresh else self._feature_cache[key] for i, key in enumerate(keys)]

    def _columns(self, vocab: Vocabulary) -> list[int]:
        missing = [i for i in vocab.ids if i not in self.column]
        if missing:
            raise DataError(f"predictions in {self.directory} (vocabulary {self.meta.get('vocabulary')}) have no "
                            f"logits for class ids {missing[:5]}; export them over the stream's vocabulary")
        return [self.column[i] for i in vocab.ids]

    def _logits_over(self, scores: torch.Tensor, columns: list[int], valid: torch.Tensor | None) -> torch.Tensor:
        num_classes = len(self.class_ids)
        if self.ensemble is None:
            return scores[:, columns + ([num_classes] if self.void else [])]
        return fcclip_class_logits(scores[:, columns + [num_classes]],
                                   scores[:, [num_classes + 1 + c for c in columns]],
                                   self.category_overlap[columns].to(scores.device), self.ensemble["alpha"],
                                   self.ensemble["beta"], valid.to(scores.device) if valid is not None else None)

    def class_logits(self, scores: torch.Tensor, vocab: Vocabulary, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(M, C[+1]) logits over `vocab`'s classes (void last, if exported) from (M, score_width) class scores:
        their softmax is the class probabilities of the exported model run with `vocab`'s class names. The
        scores' columns, or with an ensemble FC-CLIP's `mask_cls_results` over them (`fcclip_class_logits`;
        `valid`: the queries' valid masks, needed with ensemble.on_valid_mask)."""
        return self._logits_over(scores, self._columns(vocab), valid)

    def probs_with_void(self, scores: torch.Tensor, vocab: Vocabulary,
                        valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """((M, C) non-void, (M,) void probabilities) from (M, score_width) class scores: the softmax of
        `class_logits` (FC-CLIP's `softmax(mask_cls)`), void split off (zeros when the producer has no void)."""
        probs = self.class_logits(scores, vocab, valid).softmax(dim=1)
        void = probs[:, len(vocab)] if self.void else torch.zeros(len(scores), dtype=probs.dtype, device=probs.device)
        return probs[:, :len(vocab)], void

    @staticmethod
    def valid_masks(features: ImageFeatures) -> torch.Tensor | None:
        """(M,) bool the queries' valid masks (FC-CLIP's ENSEMBLE_ON_VALID_MASK), or None."""
        soft = features.soft_masks
        return torch.from_numpy(soft.valid) if soft is not None and soft.valid is not None else None

    def base_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) the non-void part of the softmax (FC-CLIP's `softmax(mask_cls)[..., :-1]`)."""
        return self.probs_with_void(features.logits, vocab, self.valid_masks(features))[0]

    def void_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M,) the void part of the softmax (zeros when the producer has no void class)."""
        return self.probs_with_void(features.logits, vocab, self.valid_masks(features))[1]

    def text_embeddings(self, vocab: Vocabulary) -> torch.Tensor:
        if self._text is None:
            raise UserError(f"model=cached: {self.directory} has no text_embeddings.npy, so it cannot classify "
                            f"embeddings; export the text classifier or use a method that reads logits")
        return F.normalize(self._text[self._columns(vocab)], dim=-1)

    def classify(self, embeddings: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) softmax(logit_scale · cos(embedding, text embedding)) with the exported text classifier."""
        return (self.logit_scale * embeddings @ self.text_embeddings(vocab).T).softmax(dim=-1)

    def dense_features(self, images: list[np.ndarray]) -> torch.Tensor:
        raise UserError("model=cached has no dense features; use method.embedder=segmenter or dinov2_* with it")

    def cached_dense_features(self, samples: list[Image]) -> list[torch.Tensor]:
        return self.dense_features([s.image for s in samples])

    def region_embeddings(self, samples: list[Image], regions: list[np.ndarray], counts: list[int]) -> list[torch.Tensor]:
        return self.dense_features([s.image for s in samples])
