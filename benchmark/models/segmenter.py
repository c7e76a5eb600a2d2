"""The frozen open-vocabulary segmenter every method shares, built on open_clip.

Pipeline for one image:
1. dense CLIP features: the ViT runs on the resized image; in the last block only the value path is kept
   (MaskCLIP, Zhou et al. 2022: v = W_v·LN(x), then the attention output projection, `ln_post` and `proj`;
   no attention mixing, no MLP), giving one embedding per patch in the joint image-text space;
2. class-agnostic mask proposals (`superpixel`: SLIC from scikit-image; `oracle`: the ground-truth segments,
   for analysis only) as a partition of the image;
3. mask pooling: area-weighted mean of the patch embeddings under each proposal, L2-normalised;
4. text classifier: each class's prompt templates x synonyms encoded, averaged and normalised;
   P_base = softmax(logit_scale · cos(mask embedding, class embedding)) over the asked vocabulary.

Per-image results are cached in memory (bounded in bytes, validation and training images apart) and on disk
(feature_cache.py: keyed by a digest of the model config and seed and of the image), so training-free methods
evaluate steps 1..T, and later runs, without a backbone pass, and a training image returning in a later step
is not run again. Cached features are stored in `model.feature_dtype` (float16 by default: half the bytes) and
decoded to float32 for every computation.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import ImageInput, Vocabulary
from benchmark.errors import UserError
from benchmark.models.base import Image, Segmenter
from benchmark.models.dense import blocks_take_batch_first, maskclip_value_path, pool_regions
from benchmark.models.features import ImageFeatures, byte_size

OPEN_CLIP_CONFIG_DIR = Path(__file__).parent / "open_clip_configs"
STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}  # model.feature_dtype

PROMPT_TEMPLATES = {
    "single": ("a photo of a {}.",),
    # a subset of CLIP's ImageNet prompt ensemble, as used by MaskCLIP / FC-CLIP style segmenters
    "ensemble": (
        "a photo of a {}.", "a photo of the {}.", "a bad photo of a {}.", "a photo of a small {}.",
        "a photo of a large {}.", "a cropped photo of the {}.", "there is a {} in the scene.",
        "a close-up photo of a {}.",
    ),
}


class OpenVocabSegmenter(Segmenter):
    """Frozen open_clip model + proposals + text classifier (model.kind=open_clip). Built once per run and shared
    by all methods."""

    def __init__(self, config, seed: int = 0, device: str = "cpu", cache_dir: Path | str | None = None) -> None:
        import open_clip

        from benchmark.models.feature_cache import FeatureCache, MemoryCache, config_digest, weights_digest

        self.config = config
        self.seed = seed
        self.device = torch.device(device)
        open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)
        if config.arch not in open_clip.list_models():
            raise UserError(f"model.arch='{config.arch}' is not an open_clip architecture (see open_clip.list_models())")
        torch.manual_seed(seed)  # random-weight models are reproducible from the run seed
        if config.pretrained:
            from benchmark.models.weights import check_open_clip_weights

            check_open_clip_weights(config.arch, config.pretrained)
        if not config.pretrained:  # random weights are intended here: silence open_clip's "no weights" warning
            logging.disable(logging.WARNING)
        try:
            model = open_clip.create_model(config.arch, pretrained=config.pretrained or None)
        finally:
            logging.disable(logging.NOTSET)
        self.model = model.eval().to(self.device).requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(config.arch)
        visual = self.model.visual
        self.mean = torch.tensor(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        self.patch_size = visual.patch_size[0] if isinstance(visual.patch_size, tuple) else visual.patch_size
        self.logit_scale = float(self.model.logit_scale.exp().clamp(max=100))
        self._class_text: dict[tuple, torch.Tensor] = {}  # (class id, synonyms) -> (D,) text embedding
        self.storage_dtype = STORAGE_DTYPES[config.feature_dtype]
        # per-image results reused across steps, in memory: validation images (segmented after every step) and
        # training images (a step's images, again when they return in a later step) in separate caches, so a
        # stream of training images never evicts the validation set; each bounded in bytes (least recently
        # used evicted). The role follows the protocol's types: predict gets ImageInput, learn gets Sample.
        budget = int(config.cache_memory_mb * 2**20)
        self.memory_caches = {role: MemoryCache(budget, byte_size) for role in ("validation", "training")}
        # ... and on disk across runs. The digest is the model's identity (also in exported predictions): every
        # config key that changes an output (not the batch size, nor the in-memory budget), the weights
        # themselves and the prompt templates' text (a changed template changes the text classifier)
        described = {k: v for k, v in _config_items(config)
                     if k not in ("name", "batch_size", "cache_dir", "cache_memory_mb")}
        self._templates = PROMPT_TEMPLATES[config.templates]
        self.digest = config_digest({"segmenter": "open_clip", **described, "templates": self._templates,
                                     "weights": weights_digest(self.model)})
        self.cache_dir = cache_dir
        self.disk_cache = FeatureCache(cache_dir, f"segmenter-{self.digest}")
        self.dense_disk_cache = FeatureCache(cache_dir, f"dense-{self.digest}")
        self.backbone_images = 0  # images through the ViT (the manifest's pass counts)
        self.text_prompts = 0  # prompts through the text encoder
        self.embed_dim = int(self.model.text_projection.shape[1]) if self.model.text_projection is not None else None

    # ---------------------------------------------------------------- dense features
    def _positional_embedding(self, grid: int) -> torch.Tensor:
        """Positional embedding resized (bicubic) when the input size differs from the pretrained one."""
        pos = self.model.visual.positional_embedding  # (1 + g*g, width)
        native = int(round((pos.shape[0] - 1) ** 0.5))
        if native == grid:
            return pos
        patch = pos[1:].reshape(1, native, native, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([pos[:1], patch.permute(0, 2, 3, 1).reshape(grid * grid, -1)])

    @torch.no_grad()
    def dense_features(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B, g, g, D) MaskCLIP dense embeddings for a batch of RGB uint8 images (resized to input_size)."""
        visual = self.model.visual
        tokens = self.tokens_before_last_block(images)
        return maskclip_value_path(tokens, visual.transformer.resblocks[-1], visual.ln_post, visual.proj).cpu()

    @torch.no_grad()
    def tokens_before_last_block(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B, 1 + g*g, width) ViT tokens (batch first) entering the last block: the frozen part below a
        trainable last block (baselines with trainable=last_block cache these)."""
        size = self.config.input_size
        # torch.tensor copies: the pixels are read-only views (ImageInput), which from_numpy warns about
        batch = torch.stack([
            F.interpolate(torch.tensor(img).permute(2, 0, 1)[None].float(), size=(size, size),
                          mode="bilinear", align_corners=False)[0]
            for img in images
        ]) / 255.0
        x = ((batch - self.mean) / self.std).to(self.device)
        self.backbone_images += len(images)
        visual = self.model.visual
        grid = size // self.patch_size
        x = visual.conv1(x).flatten(2).transpose(1, 2)  # (B, g*g, width)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self._positional_embedding(grid).to(x.dtype)
        x = visual.ln_pre(x)
        batch_first = blocks_take_batch_first(visual.transformer)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        if not batch_first:
            x = x.transpose(0, 1)
        return x

    # ---------------------------------------------------------------- proposals
    def propose(self, sample: Image) -> np.ndarray:
        """(H, W) int32 class-agnostic proposal index per pixel (-1 = not covered)."""
        kind = self.config.proposals
        if kind == "superpixel":
            from skimage.segmentation import slic

            return slic(sample.image, n_segments=self.config.superpixel_segments,
                        compactness=self.config.superpixel_compactness, start_label=0,
                        channel_axis=-1).astype(np.int32)
        if kind == "oracle":  # training samples: their (filtered) labels; validation images: the runner's oracle path
            return sample.oracle_proposals().regions
        raise UserError(f"model.proposals='{kind}' is not one of: superpixel, oracle")

    def image_features(self, samples: list[Image], dense: list[torch.Tensor | None] | None = None) -> list[ImageFeatures]:
        """Proposals and their pooled embeddings for a batch of images; `dense` (per image, or None) reuses
        dense features already computed, so the backbone runs only for the others."""
        dense = list(dense) if dense is not None else [None] * len(samples)
        todo = [i for i, d in enumerate(dense) if d is None]
        if todo:
            for i, feats in zip(todo, self.dense_features([samples[i].image for i in todo])):
                dense[i] = feats
        out = []
        for sample, feats in zip(samples, dense):
            proposals = self.propose(sample)
            num = int(proposals.max()) + 1 if proposals.size and proposals.max() >= 0 else 0
            instances = self.config.proposals == "oracle" and sample.oracle_proposals().instances
            # pooled from the stored precision of the dense features, whichever path produced them, so an
            # image's features never depend on which method ran first
            stored = feats.to(self.storage_dtype)
            out.append(ImageFeatures(proposals, pool_regions(stored, proposals, num),
                                     instance_proposals=instances, storage_dtype=self.storage_dtype))
        return out

    def proposal_inputs(self, sample: Image) -> tuple[np.ndarray, ...]:
        """What an image's proposals depend on besides its pixels and the config: with model.proposals=oracle,
        its ground-truth regions (a training image's labels are filtered to each step's classes)."""
        return (sample.oracle_proposals().regions,) if self.config.proposals == "oracle" else ()

    def cached_per_image(self, kind: str, samples: list[Image], compute, key_inputs=lambda sample: ()) -> list:
        """`compute(samples)` for the samples missing from the in-memory cache of their role (validation:
        ImageInput, training: Sample), keyed by `kind`, image id and size (and a digest of the image and
        `key_inputs(sample)` when there are any); shared by the feature, dense-feature and (baselines') token
        caches."""
        from benchmark.models.feature_cache import image_key

        def key(s: Image) -> str:
            inputs = key_inputs(s)
            return f"{kind}:{s.image_id}:{s.height}x{s.width}" + (f":{image_key(s, *inputs)}" if inputs else "")

        keys = [key(s) for s in samples]
        caches = [self.memory_caches[role_of(s)] for s in samples]
        found = [cache.get(key) for cache, key in zip(caches, keys)]
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            for i, value in zip(missing, compute([samples[i] for i in missing])):
                found[i] = value
                caches[i].put(keys[i], value)
        return found

    def cached_image_features(self, samples: list[Image]) -> list[ImageFeatures]:
        """`image_features` with a per-image cache in memory and on disk; dense features already in memory
        (the learning baselines' predict asks for them first) are reused instead of a second backbone pass."""
        def compute(batch: list[Image]) -> list[ImageFeatures]:
            dense = {id(s): self.memory_caches[role_of(s)].peek(f"dense:{s.image_id}:{s.height}x{s.width}")
                     for s in batch}
            return disk_cached(self.disk_cache, batch, lambda todo: self.image_features(todo, [dense[id(s)] for s in todo]),
                               self.proposal_inputs)

        return self.cached_per_image("features", samples, compute, self.proposal_inputs)

    def cached_dense_features(self, samples: list[Image]) -> list[torch.Tensor]:
        """(g, g, D) dense features per image, cached in memory and on disk in `storage_dtype` (decode with
        .float()): a training image shared by several steps runs the backbone once."""
        def compute(batch: list[Image]) -> list[torch.Tensor]:
            return disk_cached_arrays(self.dense_disk_cache, batch, lambda todo: [
                d.to(self.storage_dtype) for d in self.dense_features([s.image for s in todo])])

        return self.cached_per_image("dense", samples, compute)

    def cache_report(self) -> dict:
        """Entries, bytes, hits and evictions of the in-memory caches; passes through the encoders."""
        return {"memory": {role: cache.report() for role, cache in self.memory_caches.items()},
                "backbone_images": self.backbone_images, "text_prompts": self.text_prompts}

    # ---------------------------------------------------------------- text classifier
    @torch.no_grad()
    def text_embeddings(self, vocab: Vocabulary) -> torch.Tensor:
        """(C, D) one normalised embedding per class of `vocab`: mean over templates x synonyms. Cached per
        class, so a growing vocabulary encodes only its new classes."""
        for cls in vocab.classes:
            key = (cls.id, tuple(cls.synonyms))
            if key not in self._class_text:
                prompts = [t.format(s) for s in cls.synonyms for t in self._templates]
                tokens = self.tokenizer(prompts).to(self.device)
                self.text_prompts += len(prompts)
                emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1).mean(0)
                self._class_text[key] = F.normalize(emb, dim=-1).cpu()
        return torch.stack([self._class_text[(cls.id, tuple(cls.synonyms))] for cls in vocab.classes])

    def classify(self, embeddings: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) P_base over `vocab` for (M, D) mask embeddings."""
        logits = self.logit_scale * embeddings @ self.text_embeddings(vocab).T
        return logits.softmax(dim=-1)

    def base_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M, C) P_base over `vocab` for the proposals of one image (the same for every segmenter kind)."""
        return self.classify(features.embeddings, vocab)

    def void_probs(self, features: ImageFeatures, vocab: Vocabulary) -> torch.Tensor:
        """(M,) probability of "no object" per proposal: this model has no void class."""
        return torch.zeros(len(features.embeddings))

    def region_embeddings(self, samples: list[Image], regions: list[np.ndarray], counts: list[int]) -> list[torch.Tensor]:
        """Mask-pooled dense CLIP embeddings of given regions ((H, W) index maps, -1 = none), (R, D) each."""
        return [pool_regions(dense.float(), region, count)
                for dense, region, count in zip(self.cached_dense_features(samples), regions, counts)]


def _config_items(config) -> list[tuple[str, object]]:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(config):
        return list(OmegaConf.to_container(config, resolve=True).items())
    return list(vars(config).items())


def role_of(sample: Image) -> str:
    """Which in-memory cache holds an image's entries: validation images reach methods as ImageInput."""
    return "validation" if isinstance(sample, ImageInput) else "training"


def disk_cached(cache, samples: list[Image], compute, key_inputs=lambda sample: ()) -> list[ImageFeatures]:
    """ImageFeatures from the disk cache where present (keyed by the image and `key_inputs(sample)`); the rest
    computed in one batch and written."""
    return _disk_cached(cache, samples, compute, lambda feats: feats.to_arrays(), ImageFeatures.from_arrays,
                        key_inputs)


def disk_cached_arrays(cache, samples: list[Image], compute) -> list[torch.Tensor]:
    """One tensor per image from the disk cache where present; the rest computed in one batch and written."""
    return _disk_cached(cache, samples, compute, lambda tensor: {"tensor": tensor.numpy()},
                        lambda arrays: torch.from_numpy(arrays["tensor"]))


def _disk_cached(cache, samples: list[Image], compute, to_arrays, from_arrays, key_inputs=lambda sample: ()) -> list:
    from benchmark.models.feature_cache import image_key

    if not cache.enabled:
        return compute(samples)
    keys = [image_key(s, *key_inputs(s)) for s in samples]
    found = [cache.get(key) for key in keys]
    missing = [i for i, arrays in enumerate(found) if arrays is None]
    fresh = dict(zip(missing, compute([samples[i] for i in missing]))) if missing else {}
    for i, value in fresh.items():
        cache.put(keys[i], **to_arrays(value))
    return [fresh[i] if i in fresh else from_arrays(found[i]) for i in range(len(samples))]
