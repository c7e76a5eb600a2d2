"""The `Segmenter` protocol: what every method and baseline may ask of the frozen base segmenter, whichever
model kind (`model.kind`) built it. A kind implements it explicitly (subclass it) or structurally; a builder
registered with `benchmark.models.register_model_kind` returns one, and `build_segmenter` checks the result
with `missing_members`.
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from benchmark.data.types import ImageInput, Sample, Vocabulary

if TYPE_CHECKING:
    import numpy as np
    import torch

    from benchmark.models.features import ImageFeatures

Image = ImageInput | Sample  # validation images reach the segmenter without labels, training samples with them


@runtime_checkable
class Segmenter(Protocol):
    """Mask proposals with class probabilities over any vocabulary, and embeddings for methods that retrieve."""

    config: Any  # the model's config (configs/model/*.yaml): kind, batch_size, and the kind's own keys
    seed: int  # the run seed (random-weight models are built from it)
    device: Any  # torch device (or its name) the model's computations run on
    digest: str  # identity of the model's outputs: keys the disk caches of whatever is computed from them
    embed_dim: int | None  # width D of the mask embeddings (None or 0: the model exports none)
    logit_scale: float  # temperature of `classify`: softmax(logit_scale * cosine)
    cache_dir: Path | None  # disk cache folder for features computed on this model's proposals (None: off)

    @abstractmethod
    def image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """Each image's proposals, mask embeddings and (exported models) class scores, computed afresh."""

    @abstractmethod
    def cached_image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """`image_features`, reused from the segmenter's caches where present."""

    @abstractmethod
    def base_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) P_base over `vocab` for one image's M proposals (the non-void part)."""

    @abstractmethod
    def void_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M,) probability of "no object" per proposal (zeros for a model without a void class)."""

    @abstractmethod
    def text_embeddings(self, vocab: Vocabulary) -> torch.Tensor:
        """(C, D) one L2-normalised text embedding per class of `vocab`."""

    @abstractmethod
    def classify(self, embeddings: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) softmax(logit_scale · cos(embedding, text embedding)) over `vocab` for (M, D) embeddings."""

    @abstractmethod
    def dense_features(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B, g, g, D) dense embeddings of RGB uint8 images (a UserError for models that have none)."""

    @abstractmethod
    def cached_dense_features(self, samples: list[Image]) -> list[torch.Tensor]:
        """`dense_features` per image, reused from the segmenter's caches where present."""

    @abstractmethod
    def region_embeddings(self, samples: list[Image], regions: list[np.ndarray],
                          counts: list[int]) -> list[torch.Tensor]:
        """(R, D) dense embeddings pooled under given regions ((H, W) index maps, -1 = none), per image."""


SEGMENTER_MEMBERS = tuple(sorted({*Segmenter.__annotations__, *(name for name, value in vars(Segmenter).items()
                                                                 if getattr(value, "__isabstractmethod__", False))}))


def missing_members(segmenter: object) -> list[str]:
    """The members of `Segmenter` that `segmenter` lacks ([] when it conforms). Unlike isinstance, this also
    sees an attribute an explicit subclass never set."""
    return [name for name in SEGMENTER_MEMBERS if not hasattr(segmenter, name)]
