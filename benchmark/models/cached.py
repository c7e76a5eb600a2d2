"""A base segmenter read from predictions exported by an external model (FC-CLIP, MaskFormer, ...), so the
paper's FC-CLIP setting is reproducible without this project depending on detectron2:
`model=cached model.predictions_dir=PATH`.

File format (version 1), one folder per model and dataset, covering the training and validation images:

    meta.json            {"format": "covseg-predictions", "version": 1,
                          "vocabulary": "ade20k_150",        # vocabulary name (benchmark/data/vocabularies)
                          "class_ids": [0, 1, ...],          # dataset class id of each logit column
                          "no_object": true,                 # logits carry a trailing "no object" column
                          "embedding_dim": 768 | null,       # width of the optional mask embeddings
                          "logit_scale": 100.0,              # for `classify` with text_embeddings.npy
                          "producer": "fc-clip convnext-L"}  # free text: model, weights, commit
    text_embeddings.npy  optional (K, D) float32 class embeddings in class_ids order (enables `classify`)
    <image_id>.npz       one per image ("/" in ids written as "__"), with arrays
        masks       (M, H, W) bool  mask proposals at the image's resolution (may overlap; resized nearest
                                    to the image if exported at another size)
        logits      (M, K) or (M, K + 1) float32  class logits in class_ids order (+ no object, last)
        embeddings  optional (M, D) float32  mask embeddings (L2-normalised on read)

P_base over an asked vocabulary = softmax of the logits of its classes (and the no-object column), with the
no-object probability then dropped, as MaskFormer does. `write_meta` / `write_image_predictions` write the
format; `export_predictions` (`python -m benchmark export-predictions`) writes it from any segmenter of this
project, so a stream's base-model outputs are computed once (say on a GPU machine) and every later run reads
them. An exporter for FC-CLIP keeps per query: `mask_pred.sigmoid() > 0.5`, `mask_cls` (with its
no-object column) and the pooled CLIP embedding.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import Sample, SegmentationDataset, Vocabulary
from benchmark.errors import DataError, UserError
from benchmark.io import atomic_save_npz, atomic_write_json
from benchmark.models.segmenter import Image, ImageFeatures

FORMAT = "covseg-predictions"
VERSION = 1


def prediction_file(directory: Path | str, image_id: str) -> Path:
    return Path(directory) / f"{image_id.replace('/', '__')}.npz"


def write_meta(directory: Path | str, vocabulary: str, class_ids: list[int], no_object: bool = False,
               embedding_dim: int | None = None, logit_scale: float = 100.0, producer: str = "",
               text_embeddings: np.ndarray | None = None) -> None:
    """Write meta.json (and text_embeddings.npy when given) of a predictions folder."""
    directory = Path(directory)
    atomic_write_json(directory / "meta.json", {
        "format": FORMAT, "version": VERSION, "vocabulary": vocabulary, "class_ids": [int(i) for i in class_ids],
        "no_object": bool(no_object), "embedding_dim": embedding_dim, "logit_scale": float(logit_scale),
        "producer": producer})
    if text_embeddings is not None:
        np.save(directory / "text_embeddings.npy", np.asarray(text_embeddings, dtype=np.float32))


def write_image_predictions(directory: Path | str, image_id: str, masks: np.ndarray, logits: np.ndarray,
                            embeddings: np.ndarray | None = None) -> None:
    """Write one image's predictions: (M, H, W) bool masks, (M, K[+1]) logits, optional (M, D) embeddings."""
    masks = np.asarray(masks, dtype=bool)
    logits = np.asarray(logits, dtype=np.float32)
    if masks.ndim != 3 or logits.ndim != 2 or len(masks) != len(logits):
        raise ValueError(f"masks must be (M, H, W) and logits (M, K); got {masks.shape} and {logits.shape}")
    arrays = {"masks": masks, "logits": logits}
    if embeddings is not None:
        arrays["embeddings"] = np.asarray(embeddings, dtype=np.float32)
    atomic_save_npz(prediction_file(directory, image_id), **arrays)


def read_image_predictions(directory: Path | str, image_id: str) -> dict[str, np.ndarray]:
    path = prediction_file(directory, image_id)
    if not path.is_file():
        raise DataError(f"no predictions for image '{image_id}': {path} is missing; export every training and "
                        f"validation image of the stream (benchmark/models/cached.py)")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@torch.no_grad()
def export_predictions(segmenter, images: list[tuple[SegmentationDataset, Sequence[int]]], directory: Path | str,
                       vocabulary: Vocabulary, producer: str = "", progress=None) -> tuple[int, int]:
    """Write the predictions of a project segmenter (its proposals as masks, logit_scale · cosine logits over
    `vocabulary`, its mask embeddings) for the given (dataset, indices) images; returns (written, kept).

    Resumable: an image whose file exists is kept, provided meta.json there describes the same producer and
    vocabulary (anything else is refused rather than mixed). `progress(iterable, desc=, total=)` wraps the loop.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = segmenter.text_embeddings(vocabulary)  # (K, D)
    meta_path = directory / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        theirs, ours = (meta.get("producer"), meta.get("vocabulary")), (producer, vocabulary.name)
        if theirs != ours:
            raise UserError(f"{directory} holds predictions of producer {theirs[0]!r} over {theirs[1]}, not "
                            f"{ours[0]!r} over {ours[1]}; choose another folder")
    write_meta(directory, vocabulary.name, vocabulary.ids, no_object=False, embedding_dim=int(text.shape[1]),
               logit_scale=segmenter.logit_scale, producer=producer, text_embeddings=text.numpy())
    todo = [(dataset, index) for dataset, indices in images for index in indices]
    batches = [todo[start:start + segmenter.config.batch_size]
               for start in range(0, len(todo), segmenter.config.batch_size)]
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
        if not samples:
            continue
        for sample, feats in zip(samples, segmenter.image_features(samples)):
            logits = segmenter.logit_scale * feats.embeddings @ text.T  # (M, K)
            write_image_predictions(directory, sample.image_id, feats.mask_stack(), logits.numpy(),
                                    feats.embeddings.numpy())
            written += 1
    return written, kept


def _resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    if masks.shape[1:] == (height, width):
        return masks
    resized = F.interpolate(torch.from_numpy(masks)[None].float(), size=(height, width), mode="nearest")[0]
    return resized.numpy() > 0.5


class CachedSegmenter:
    """The frozen base segmenter as a reader of exported predictions (see the module doc for the format)."""

    def __init__(self, config, seed: int = 0, device: str = "cpu", cache_dir: Path | str | None = None) -> None:
        if not config.predictions_dir:
            raise UserError("model=cached needs model.predictions_dir=PATH (a folder written in the format of "
                            "benchmark/models/cached.py)")
        self.config = config
        self.seed = seed
        self.cache_dir = cache_dir  # disk cache of embedders run on these proposals (the predictions are on disk)
        self.directory = Path(config.predictions_dir).expanduser()
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise UserError(f"model.predictions_dir={self.directory}: no meta.json there (see benchmark/models/cached.py)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise DataError(f"{meta_path}: format {self.meta.get('format')} v{self.meta.get('version')} is not "
                            f"{FORMAT} v{VERSION}")
        self.class_ids = [int(i) for i in self.meta["class_ids"]]
        self.column = {class_id: c for c, class_id in enumerate(self.class_ids)}  # dataset class id -> logit column
        self.no_object = bool(self.meta.get("no_object", False))
        self.embed_dim = self.meta.get("embedding_dim")
        self.logit_scale = float(self.meta.get("logit_scale", 100.0))
        text_path = self.directory / "text_embeddings.npy"
        self._text = torch.from_numpy(np.load(text_path)) if text_path.is_file() else None
        self.digest = f"cached-{self.directory.resolve()}"
        self._feature_cache: dict[str, ImageFeatures] = {}
        self.cache_size = 4096

    def image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """Each image's exported masks (resized to the image), logits and normalised embeddings."""
        out = []
        for sample in samples:
            arrays = read_image_predictions(self.directory, sample.image_id)
            masks = _resize_masks(arrays["masks"].astype(bool), sample.height, sample.width)  # (M, H, W)
            logits = torch.from_numpy(arrays["logits"].astype(np.float32))  # (M, K[+1])
            expected = len(self.class_ids) + self.no_object
            if logits.shape[1] != expected:
                raise DataError(f"{prediction_file(self.directory, sample.image_id)}: logits have {logits.shape[1]} "
                                f"columns, meta.json implies {expected}")
            if "embeddings" in arrays:
                embeddings = F.normalize(torch.from_numpy(arrays["embeddings"].astype(np.float32)), dim=-1)
            else:
                embeddings = torch.zeros(len(masks), 0)
            # the partition view: each pixel shows its most confident covering mask
            confidence = logits.softmax(dim=1)[:, :len(self.class_ids)].max(dim=1).values.numpy()  # (M,)
            if len(masks):
                weighted = np.where(masks, confidence[:, None, None] + 1.0, 0.0)
                proposals = np.where(masks.any(0), weighted.argmax(0), -1).astype(np.int32)
            else:
                proposals = np.full((sample.height, sample.width), -1, dtype=np.int32)
            out.append(ImageFeatures(proposals, embeddings, instance_proposals=True, masks=masks, logits=logits))
        return out

    def cached_image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """`image_features` with a bounded in-memory cache keyed by image id and size."""
        keys = [f"{s.image_id}:{s.height}x{s.width}" for s in samples]
        missing = [i for i, key in enumerate(keys) if key not in self._feature_cache]
        fresh = dict(zip(missing, self.image_features([samples[i] for i in missing]))) if missing else {}
        for i, feats in fresh.items():
            if len(self._feature_cache) < self.cache_size:
                self._feature_cache[keys[i]] = feats
        return [fresh[i] if i in fresh else self._feature_cache[key] for i, key in enumerate(keys)]

    def propose(self, sample: Image) -> np.ndarray:
        return self.image_features([sample])[0].proposals

    def _columns(self, vocab: Vocabulary) -> list[int]:
        missing = [i for i in vocab.ids if i not in self.column]
        if missing:
            raise DataError(f"predictions in {self.directory} (vocabulary {self.meta.get('vocabulary')}) have no "
                            f"logits for class ids {missing[:5]}; export them over the stream's vocabulary")
        return [self.column[i] for i in vocab.ids]

    def base_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) softmax over the logits of `vocab`'s classes (and no object, then dropped)."""
        columns = self._columns(vocab) + ([len(self.class_ids)] if self.no_object else [])
        probs = features.logits[:, columns].softmax(dim=1)
        return probs[:, :len(vocab)]

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
