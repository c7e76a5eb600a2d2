"""A base segmenter read from predictions exported by an external model (FC-CLIP, MaskFormer, ...), so the
paper's FC-CLIP setting is reproducible without this project depending on detectron2:
`model=cached model.predictions_dir=PATH`.

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

`image_arrays` is the one conversion from model outputs to a v3 image file (the FC-CLIP exporter,
benchmark/exporters/fcclip.py, and `export_predictions` both use it); `export_predictions`
(`python -m benchmark export-predictions`) writes v3 from any segmenter of this project.
"""
from __future__ import annotations

import json
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import Sample, SegmentationDataset, Vocabulary
from benchmark.errors import DataError, UserError
from benchmark.io import atomic_save_npz, atomic_write_json
from benchmark.models.mask_inference import SoftMasks, fcclip_class_logits, store_mask_logits
from benchmark.models.segmenter import Image, ImageFeatures

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


def read_image_predictions(directory: Path | str, image_id: str, names: list[str] | None = None
                           ) -> dict[str, np.ndarray]:
    """One image's exported arrays (those of `names` it holds, default all)."""
    path = prediction_file(directory, image_id)
    if not path.is_file():
        raise DataError(f"no predictions for image '{image_id}': {path} is missing; export every training and "
                        f"validation image of the stream (benchmark/models/cached.py)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (names or data.files) if name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, foreign
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        raise DataError(f"{path}: unreadable predictions ({reason}); export this image again") from None


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


@torch.no_grad()
def export_predictions(segmenter, images: list[tuple[SegmentationDataset, Sequence[int]]], directory: Path | str,
                       vocabulary: Vocabulary, producer: str = "", progress=None) -> tuple[int, int]:
    """Write format v3 predictions of a project segmenter for the given (dataset, indices) images; returns
    (written, kept). Its proposals become mask logits of +-64 at the image's size, its class logits are
    logit_scale · cosine over `vocabulary` (no void, no ensemble), with its mask embeddings and text classifier.

    Resumable (`export_images`): an image whose file exists is kept, provided meta.json there describes the
    same producer, vocabulary and format (anything else is refused rather than mixed).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = segmenter.text_embeddings(vocabulary)  # (K, D)
    check_folder(directory, producer, vocabulary.name)
    write_meta(directory, vocabulary.name, vocabulary.ids, void=False, embedding_dim=int(text.shape[1]),
               logit_scale=segmenter.logit_scale, producer=producer, text_embeddings=text.numpy())

    def predict(samples: list[Sample]) -> list[dict[str, np.ndarray]]:
        out = []
        for sample, feats in zip(samples, segmenter.image_features(samples)):
            logits = segmenter.logit_scale * feats.embeddings @ text.T  # (M, K)
            mask_logits = np.where(feats.mask_stack(), DEFAULT_MASK_LOGIT_BOUND, -DEFAULT_MASK_LOGIT_BOUND)
            size = (sample.height, sample.width)
            out.append(image_arrays(mask_logits, logits, size, size, feats.embeddings))
        return out

    return export_images(images, directory, segmenter.config.batch_size, predict, progress)


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
        self.device = device  # FC-CLIP's upsampling and inference of soft masks run there
        self.cache_dir = cache_dir  # disk cache of embedders run on these proposals (the predictions are on disk)
        self.directory = Path(config.predictions_dir).expanduser()
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise UserError(f"model.predictions_dir={self.directory}: no meta.json there (see benchmark/models/cached.py)")
        self.meta = json.loads(meta_path.read_text())
        self.version = self.meta.get("version")
        if self.meta.get("format") != FORMAT or self.version not in READABLE_VERSIONS:
            raise DataError(f"{meta_path}: format {self.meta.get('format')} v{self.version} is not {FORMAT} "
                            f"v{' or v'.join(map(str, READABLE_VERSIONS))}")
        self.class_ids = [int(i) for i in self.meta["class_ids"]]
        self.column = {class_id: c for c, class_id in enumerate(self.class_ids)}  # dataset class id -> column
        self.void = bool(self.meta.get("void" if self.version >= 2 else "no_object", False))
        self.mask_logit_bound = float(self.meta.get("mask_logit_bound", DEFAULT_MASK_LOGIT_BOUND))  # v2's codes
        self.semantic_at_input = bool(self.meta.get("semantic_at_input", False))
        self.thresholds = (float(self.meta.get("object_threshold", 0.8)), float(self.meta.get("overlap_threshold", 0.8)))
        self.embed_dim = self.meta.get("embedding_dim")
        self.logit_scale = float(self.meta.get("logit_scale", 100.0))
        self.ensemble = self.meta.get("ensemble") if self.version >= 3 else None  # FC-CLIP's settings, or None
        if self.ensemble is not None:
            missing = sorted({"alpha", "beta", "on_valid_mask", "category_overlap"} - set(self.ensemble))
            if missing or not self.void or len(self.ensemble["category_overlap"]) != len(self.class_ids):
                raise DataError(f"{meta_path}: \"ensemble\" needs alpha, beta, on_valid_mask and one category_overlap "
                                f"entry per class ({len(self.class_ids)}), and \"void\": true"
                                + (f"; missing {', '.join(missing)}" if missing else ""))
            self.category_overlap = torch.tensor(self.ensemble["category_overlap"], dtype=torch.long)
        # one row of class scores per query: the class logits (+ void), then the out-of-vocabulary logits
        self.score_width = len(self.class_ids) + self.void + (len(self.class_ids) if self.ensemble else 0)
        if self.version == 2 and self.void:
            warnings.warn(f"model.predictions_dir={self.directory}: format v2 holds FC-CLIP's class scores after its "
                          f"ensemble over the whole vocabulary, exact only with eval.vocabulary=all; re-export for v3",
                          stacklevel=2)
        text_path = self.directory / "text_embeddings.npy"
        self._text = torch.from_numpy(np.load(text_path)) if text_path.is_file() else None
        self.digest = f"cached-{self.directory.resolve()}"
        self._feature_cache: dict[str, ImageFeatures] = {}
        self.cache_size = 4096

    def image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """Each image's exported masks (soft, v2 and v3; binary, v1), class scores (`_scores`) and normalised
        embeddings; `proposals` shows each pixel's best-scoring mask."""
        out = []
        for sample in samples:
            path = prediction_file(self.directory, sample.image_id)
            arrays = read_image_predictions(self.directory, sample.image_id)
            logits = self._scores(arrays, path)
            if "embeddings" in arrays:
                embeddings = F.normalize(torch.from_numpy(arrays["embeddings"].astype(np.float32)), dim=-1)
            else:
                embeddings = torch.zeros(len(logits), 0)
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
                masks = _resize_masks(arrays["masks"].astype(bool), *size)  # (M, H, W)
                weighted = np.where(masks, confidence.numpy()[:, None, None] + 1.0, 0.0)
                proposals = np.where(masks.any(0), weighted.argmax(0), -1) if len(masks) else None
            if proposals is None:
                proposals = np.full(size, -1, dtype=np.int32)
            out.append(ImageFeatures(proposals.astype(np.int32), embeddings, instance_proposals=True, masks=masks,
                                     logits=logits, soft_masks=soft))
        return out

    def _scores(self, arrays, path: Path) -> torch.Tensor:
        """(M, score_width) float32 one image's class scores: `class_logits` (v2 `class_logprobs`, v1 `logits`),
        then `out_vocab_logits` with an ensemble."""
        names = [SCORE_KEYS[self.version]] + (["out_vocab_logits"] if self.ensemble else [])
        missing = [name for name in names if name not in arrays]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)} (format v{self.version}, benchmark/models/cached.py)")
        scores = torch.cat([torch.from_numpy(arrays[name].astype(np.float32)) for name in names], dim=1)
        if scores.shape[1] != self.score_width:
            raise DataError(f"{path}: class scores have {scores.shape[1]} columns, meta.json implies {self.score_width}")
        return scores

    def class_scores(self, image_id: str) -> torch.Tensor:
        """(M, score_width) one image's exported class scores alone (its masks are not read)."""
        arrays = read_image_predictions(self.directory, image_id, [SCORE_KEYS[self.version], "out_vocab_logits"])
        return self._scores(arrays, prediction_file(self.directory, image_id))

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
