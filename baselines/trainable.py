"""The trainable part shared by every learning baseline (finetune, replay, joint, ewc, lwf, avalanche).

It sits on the frozen open-vocabulary segmenter and changes only the image side:

    dense CLIP features f (B, g, g, D)  ->  f' = normalise(f + MLP(f))  ->  logits = logit_scale · f'·T(S_t)ᵀ

The residual MLP (`hidden` units; `hidden=0`: one linear layer) has its output layer initialised to zero, so
before any training the baseline *is* the zero-shot model; the text embeddings T of the seen classes stay
frozen (they are the classifier). On the demo a linear residual underfits badly (joint final mIoU 8 against
48 with 256 hidden units), hence the MLP default. `trainable=last_block` also opens the ViT's last block
(its MaskCLIP value path, `ln_post`, `proj`): everything below it is frozen and its output tokens are cached
per image, so training runs the last block only.

Loss: pixel-wise cross-entropy over the seen vocabulary S_t, ignoring IGNORE_LABEL pixels (the stream's label
policy). Resolution: logits stay on the g x g feature grid and are upsampled *nearest* (every pixel takes the
logits of the patch it falls in, exactly how `pool_regions` assigns pixels to patches at prediction time);
the labels are sampled s x s times per patch (`label_samples_per_cell`, nearest), so the loss is the
pixel-wise cross-entropy of the nearest-upsampled logits on an (g·s, g·s) label grid, computed per cell
without materialising the upsampled logits (memory B·g·g·C, fine for 847 classes).

Prediction reuses the zero-shot machinery for comparability: the adapted dense features are mask-pooled under
the segmenter's proposals, classified against the text embeddings of the asked vocabulary, and turned into
outputs by `outputs_from_probs` (so panoptic streams work too).

On `model=cached` (exported predictions, no dense features) the head adapts each proposal's exported class
scores instead and trains on mask-level targets: baselines/cached_head.py.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.cached_head import CachedScoreTraining
from baselines.training_set import IGNORE_INDEX, TrainingSet
from benchmark import distributed
from benchmark.data.types import IGNORE_LABEL, ImageInput, Sample, Vocabulary
from benchmark.errors import UserError
from benchmark.method import ContinualMethod, SegmentationOutput, StepData
from benchmark.models.base import Image
from benchmark.models.dense import maskclip_value_path, pool_regions
from benchmark.models.inference import outputs_from_probs
from benchmark.models.segmenter import OpenVocabSegmenter

GATHER_CHUNK = 256  # training images per window: stored together (and gathered together under torchrun)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run stops; steps already written stay intact."""


@dataclass
class TrainConfig:
    trainable: str = "head"  # head: residual MLP on the dense CLIP features | last_block: also the ViT's last block
    optimizer: str = "adamw"  # adamw | sgd (re-created at every step)
    lr: float = 0.01  # learning rate
    weight_decay: float = 0.0  # decoupled (adamw) or L2 (sgd) weight decay
    momentum: float = 0.9  # sgd momentum
    hidden: int = 256  # width of the head's hidden layer (residual MLP); 0 = one residual linear layer
    epochs: int = 6  # passes over the step's training set
    batch_size: int = 16  # images per optimisation step
    label_samples_per_cell: int = 4  # labels sampled s x s per feature cell (nearest) for the pixel-wise loss
    proposal_match_fraction: float = 0.5  # model=cached: a proposal trains on the class covering this share of it


class AdaptedFeatures(nn.Module):
    """Frozen inputs -> adapted (B, g, g, D) normalised dense features. Starts as the identity of the frozen
    segmenter's features (residual layer initialised to zero, last block copied from the segmenter)."""

    def __init__(self, segmenter: OpenVocabSegmenter, trainable: str, hidden: int = 0) -> None:
        super().__init__()
        visual = segmenter.model.visual
        self.last_block = None
        if trainable == "last_block":
            self.last_block = copy.deepcopy(visual.transformer.resblocks[-1]).requires_grad_(False)
            # only the MaskCLIP value path runs: ln_1, the attention's input (value slice) and output projections
            for module in (self.last_block.ln_1, self.last_block.attn):
                module.requires_grad_(True)
            self.ln_post = copy.deepcopy(visual.ln_post).requires_grad_(True)
            self.proj = nn.Parameter(visual.proj.detach().clone()) if visual.proj is not None else None
        dim = segmenter.embed_dim
        if hidden > 0:
            self.residual = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        else:
            self.residual = nn.Sequential(nn.Linear(dim, dim))
        nn.init.zeros_(self.residual[-1].weight)  # zero residual: starts exactly at the frozen features
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: (B, g, g, D) dense features (head) or (B, 1 + g*g, width) tokens (last_block)."""
        dense = inputs if self.last_block is None else maskclip_value_path(inputs, self.last_block, self.ln_post, self.proj)
        return F.normalize(dense + self.residual(dense), dim=-1)  # (B, g, g, D)

    def trained_parameter_count(self) -> int:
        """Parameters that training changes: the value slice of the fused q/k/v projection only counts once."""
        count = sum(p.numel() for p in self.residual.parameters())
        if self.last_block is not None:
            attn = self.last_block.attn
            width = attn.out_proj.in_features
            count += width * width + width  # value slice of in_proj_weight / in_proj_bias
            count += sum(p.numel() for p in attn.out_proj.parameters())
            count += sum(p.numel() for p in self.last_block.ln_1.parameters())
            count += sum(p.numel() for p in self.ln_post.parameters())
            count += self.proj.numel() if self.proj is not None else 0
        return count


def label_grid(sem_seg: np.ndarray, grid: int, samples_per_cell: int) -> np.ndarray:
    """(g·s, g·s) labels sampled nearest at the centres of an s x s sub-grid of every feature cell."""
    size = grid * samples_per_cell
    height, width = sem_seg.shape
    rows = ((np.arange(size) + 0.5) * height / size).astype(np.int64)
    cols = ((np.arange(size) + 0.5) * width / size).astype(np.int64)
    return sem_seg[rows[:, None], cols[None, :]]


def class_index_targets(targets: torch.Tensor, class_ids: list[int]) -> torch.Tensor:
    """Dataset class ids (IGNORE_LABEL = unlabelled) -> positions in `class_ids`; others -> IGNORE_INDEX."""
    lookup = torch.full((IGNORE_LABEL + 1,), IGNORE_INDEX, dtype=torch.int64)
    lookup[torch.as_tensor(class_ids, dtype=torch.int64)] = torch.arange(len(class_ids))
    return lookup[targets.long()]


def pixel_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of nearest-upsampled cell logits over the labelled samples of a label grid.

    logits: (B, C, g, g); targets: (B, g·s, g·s) class positions in [0, C) or IGNORE_INDEX.
    Equal to F.cross_entropy(logits upsampled nearest to g·s, targets, ignore_index=IGNORE_INDEX) with memory
    B·C·g·g only. Returns 0 (with gradient) when nothing is labelled.
    """
    batch, classes, grid, _ = logits.shape
    samples = targets.shape[-1] // grid
    cell_targets = targets.reshape(batch, grid, samples, grid, samples).permute(0, 1, 3, 2, 4)
    cell_targets = cell_targets.reshape(batch, grid, grid, samples * samples)  # (B, g, g, s*s)
    labelled = cell_targets != IGNORE_INDEX
    log_probs = logits.permute(0, 2, 3, 1).log_softmax(dim=-1)  # (B, g, g, C)
    picked = log_probs.gather(-1, cell_targets.clamp(min=0))  # (B, g, g, s*s)
    return -(picked * labelled).sum() / labelled.sum().clamp(min=1)


class TrainedHeadMethod(ContinualMethod):
    """Shared machinery of the learning baselines: the adapted features, the training loop, prediction.

    Subclasses choose what a step trains on (`training_samples`), may add a loss term (`extra_loss`) and
    update their state after a step (`after_step`)."""

    Config = TrainConfig
    method_name: ClassVar[str] = "trained"

    def __init__(self, config: TrainConfig, segmenter: OpenVocabSegmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        name = self.method_name
        if config.trainable not in ("head", "last_block"):
            raise UserError(f"method.trainable='{config.trainable}' is not one of: head, last_block ({name})")
        if config.optimizer not in ("adamw", "sgd"):
            raise UserError(f"method.optimizer='{config.optimizer}' is not one of: adamw, sgd ({name})")
        for key in ("lr", "epochs", "batch_size", "label_samples_per_cell"):
            if not getattr(config, key) > 0:
                raise UserError(f"method.{key} must be positive, got {getattr(config, key)} ({name})")
        self.cached = None  # model=cached: the head adapts exported class scores (baselines/cached_head.py)
        if getattr(segmenter.config, "kind", "open_clip") == "cached":
            if config.trainable != "head" or not 0 <= config.proposal_match_fraction <= 1:
                raise UserError(f"model=cached trains method.trainable=head only, with method.proposal_match_fraction "
                                f"within [0, 1] (got {config.trainable}, {config.proposal_match_fraction}; {name})")
            self.cached = CachedScoreTraining(segmenter, config.hidden, config.proposal_match_fraction)
            self.head = self.cached.head.to(segmenter.device)
            return
        self.head = AdaptedFeatures(segmenter, config.trainable, config.hidden).to(segmenter.device)
        self.grid = segmenter.config.input_size // segmenter.patch_size

    # ------------------------------------------------------------------ data
    def frozen_inputs(self, samples: list[Image]) -> torch.Tensor:
        """(B, ...) float32 output of the frozen part, cached (in the segmenter's storage dtype): dense features
        (head) or last-block input tokens."""
        if self.head.last_block is None:
            return torch.stack(self.segmenter.cached_dense_features(samples)).float()
        storage = self.segmenter.storage_dtype
        compute = lambda batch: list(self.segmenter.tokens_before_last_block([s.image for s in batch]).cpu().to(storage))  # noqa: E731
        return torch.stack(self.segmenter.cached_per_image("tokens", samples, compute)).float()

    def training_set(self, samples: Iterable[Sample]) -> TrainingSet:
        """Frozen inputs + label grids in a store on disk; images whose label grid has no labelled sample are
        left out. Memory holds one window of GATHER_CHUNK images at most.

        torchrun: every rank reads every sample (label grids are cheap) but runs the frozen model only on the
        images it owns (`distributed.owner`); each window's inputs are then gathered in single-process order,
        so every rank holds the training set a single process builds.
        """
        if self.cached is not None:
            return self.cached.training_set(samples)
        data = TrainingSet(self.segmenter.storage_dtype)
        owned: list[tuple[int, torch.Tensor]] = []  # (position in the window, frozen input)
        targets: list[np.ndarray] = []  # the window's label grids
        pending: list[tuple[int, Sample]] = []
        batch_size = self.segmenter.config.batch_size
        me = distributed.rank()

        def flush() -> None:
            if pending:
                inputs = self.frozen_inputs([sample for _, sample in pending])
                # clone: a view would carry (and pickle, when gathered) the storage of the whole batch
                owned.extend((position, tensor.clone()) for (position, _), tensor in zip(pending, inputs.unbind(0)))
                pending.clear()

        def store_window() -> None:
            flush()
            if targets:  # every rank has the same window: all call gather_sorted together
                data.append(torch.stack(distributed.gather_sorted(owned)), np.stack(targets))
            owned.clear()
            targets.clear()

        for sample in samples:
            labels = label_grid(sample.sem_seg, self.grid, self.config.label_samples_per_cell)
            if np.any(labels != IGNORE_LABEL):
                if distributed.owner(sample.image_id) == me:
                    pending.append((len(targets), sample))
                targets.append(labels)
            if len(pending) == batch_size:
                flush()
            if len(targets) == GATHER_CHUNK:  # bounded memory and messages (nccl stages them on the GPU)
                store_window()
        store_window()
        return data

    def training_samples(self, step: StepData) -> Iterable[Sample]:
        """What step t trains on; fine-tuning: the step's own data, labelled with C_t."""
        return step.samples()

    # ------------------------------------------------------------------ training
    def learn(self, step: StepData) -> None:
        data = self.training_set(self.training_samples(step))
        try:
            self.fit(data, step)
            self.after_step(step, data)
        finally:
            data.close()

    def make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.head.parameters() if p.requires_grad]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum,
                                   weight_decay=self.config.weight_decay)
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def logits(self, adapted: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, C, g, g) logits of adapted (B, g, g, D) features against (C, D) text embeddings."""
        return (self.segmenter.logit_scale * adapted @ text.T).permute(0, 3, 1, 2)

    def fit(self, data: TrainingSet, step: StepData) -> None:
        """`epochs` passes over `data` in a seeded order; the loss is pixel-wise CE over S_t + `extra_loss`."""
        if len(data) == 0:
            return
        device = self.segmenter.device
        vocab = step.vocabulary.subset(step.seen_classes)
        text = self.segmenter.text_embeddings(vocab).to(device) if self.cached is None else None  # (C, D)
        seen_ids = sorted(step.seen_classes)
        optimizer = self.make_optimizer()
        order = torch.Generator().manual_seed(self.seed * 1_000_003 + step.step)
        epochs = range(self.config.epochs)
        if step.progress is not None:
            epochs = step.progress(epochs, desc=f"train step {step.step}", total=self.config.epochs)
        model = distributed.wrap_ddp(self.head)  # torchrun: DistributedDataParallel, gradients averaged over ranks
        self.head.train()
        for epoch in epochs:
            for batch in torch.randperm(len(data), generator=order).split(self.config.batch_size):
                # torchrun: every rank draws the same order and trains on its share of each batch (padded, so
                # all ranks take the same number of optimiser steps); one process: the whole batch
                batch = torch.as_tensor(distributed.shard(batch.tolist(), pad=True))
                inputs, targets = data.batch(batch)
                inputs, targets = inputs.to(device), class_index_targets(targets, seen_ids).to(device)
                adapted = model(inputs)
                loss = self.task_loss(adapted, targets, vocab, text) + self.extra_loss(inputs, adapted, step)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"method {self.method_name}: training loss is {loss.item()} at step {step.step} (epoch {epoch}); "
                        f"the run stops here, steps before {step.step} are saved. Lower method.lr (now {self.config.lr})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.head.eval()

    def task_loss(self, adapted: torch.Tensor, targets: torch.Tensor, vocab: Vocabulary,
                  text: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy over `vocab` (S_t): pixel-wise on dense features (`text` its (C, D) embeddings), or
        per proposal on model=cached; targets are positions in `vocab` or IGNORE_INDEX."""
        if self.cached is not None:
            return self.cached.loss(adapted, targets, vocab)
        return pixel_cross_entropy(self.logits(adapted, text), targets)

    def extra_loss(self, inputs: torch.Tensor, adapted: torch.Tensor, step: StepData) -> torch.Tensor | float:
        """A regulariser added to the cross-entropy (EWC, LwF); none by default."""
        return 0.0

    def after_step(self, step: StepData, data: TrainingSet) -> None:
        """Update state after training on step t (replay memory, Fisher, teacher model)."""

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def adapted_features(self, samples: list[Image]) -> torch.Tensor:
        return self.head(self.frozen_inputs(samples).to(self.segmenter.device)).cpu()  # (B, g, g, D)

    @torch.no_grad()
    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        if self.cached is not None:
            return self.cached.predict(images, vocab)
        outputs = []
        dense = self.adapted_features(images)
        for image, feats, adapted in zip(images, self.segmenter.cached_image_features(images), dense):
            embeddings = pool_regions(adapted, feats.proposals, len(feats.embeddings))  # (M, D)
            outputs.append(outputs_from_probs(feats, self.segmenter.classify(embeddings, vocab), vocab,
                                              panoptic=image.panoptic))
        return outputs

    # ------------------------------------------------------------------ state and costs
    def state_dict(self) -> dict:
        return {"head": {k: v.clone() for k, v in self.head.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])

    def trainable_parameters(self) -> int:
        return self.head.trained_parameter_count()

    def memory_bytes(self) -> int:
        """Bytes of the trained parameters (subclasses add their replay memory, Fisher, teacher)."""
        return self.trainable_parameters() * 4  # float32
