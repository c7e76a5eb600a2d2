"""Regularised fine-tuning: EWC and LwF, on step t's data only (like `finetune`), each with a loss term that
holds on to what earlier steps learned.

- ewc (Kirkpatrick et al. 2017; online form of Schwarz et al. 2018): after each step the diagonal empirical
  Fisher F of the pixel-wise loss is estimated on the step's data and accumulated (F <- decay·F + F_t); the
  parameters θ* are kept. Penalty: lambda/2 · Σ F·(θ − θ*)².
- lwf (Li & Hoiem 2016): after each step the adapted-feature model is frozen as a teacher. Penalty at every
  cell of the current images (labelled or not): alpha · T² · KL(softmax(z_old/T) || softmax(z/T)) over the
  classes seen before the step, z_old from the teacher, z from the model being trained.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from baselines.trainable import TrainConfig, TrainedHeadMethod, TrainingSet, class_index_targets
from benchmark.errors import UserError
from benchmark.method import StepData, register_method


@register_method("ewc")
class EWC(TrainedHeadMethod):
    method_name = "ewc"

    @dataclass
    class Config(TrainConfig):
        lambda_: float = 1000.0  # penalty weight (config key `lambda`): lambda/2 · Σ F·(θ − θ*)²
        decay: float = 1.0  # online EWC: F <- decay·F + F_t (1: sum over steps)

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        if config.lambda_ < 0 or not 0 <= config.decay <= 1:
            raise UserError(f"method.lambda must be >= 0 and method.decay within [0, 1] (got {config.lambda_}, {config.decay})")
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def _trained(self) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in self.head.named_parameters() if p.requires_grad}

    def extra_loss(self, inputs: torch.Tensor, adapted: torch.Tensor, step: StepData) -> torch.Tensor | float:
        if not self.fisher:
            return 0.0
        penalty = sum((self.fisher[n] * (p - self.anchor[n]) ** 2).sum() for n, p in self._trained().items())
        return 0.5 * self.config.lambda_ * penalty

    def after_step(self, step: StepData, data: TrainingSet) -> None:
        """Diagonal empirical Fisher of the step's loss, one gradient per minibatch, weighted by its size."""
        if len(data) == 0:
            return
        device = self.segmenter.device
        vocab = step.vocabulary.subset(step.seen_classes)
        text = self.segmenter.text_embeddings(vocab).to(device) if self.cached is None else None
        seen_ids = sorted(step.seen_classes)
        params = self._trained()
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        for batch in torch.arange(len(data)).split(self.config.batch_size):
            self.head.zero_grad(set_to_none=True)
            inputs, targets = data.batch(batch)
            targets = class_index_targets(targets, seen_ids).to(device)
            self.task_loss(self.head(inputs.to(device)), targets, vocab, text).backward()
            for n, p in params.items():
                fisher[n] += p.grad.detach() ** 2 * len(batch) / len(data)
        self.head.zero_grad(set_to_none=True)
        self.fisher = {n: self.config.decay * self.fisher[n] + f if n in self.fisher else f for n, f in fisher.items()}
        self.anchor = {n: p.detach().clone() for n, p in params.items()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fisher": dict(self.fisher), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.fisher, self.anchor = dict(state["fisher"]), dict(state["anchor"])

    def memory_bytes(self) -> int:
        stored = sum(t.numel() * t.element_size() for t in (*self.fisher.values(), *self.anchor.values()))
        return super().memory_bytes() + stored


@register_method("lwf")
class LwF(TrainedHeadMethod):
    method_name = "lwf"

    @dataclass
    class Config(TrainConfig):
        alpha: float = 1.0  # weight of the distillation loss
        temperature: float = 2.0  # softmax temperature of the distillation

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        if self.cached is not None:
            raise UserError("method=lwf on model=cached is not available yet: its distillation compares dense "
                            "logits, which exported predictions do not have; use finetune, replay, joint or ewc")
        if config.alpha < 0 or config.temperature <= 0:
            raise UserError(f"method.alpha must be >= 0 and method.temperature positive (got {config.alpha}, {config.temperature})")
        self.teacher = None  # the adapted-feature model after the previous step
        self.old_classes: list[int] = []  # S_{t-1}

    def extra_loss(self, inputs: torch.Tensor, adapted: torch.Tensor, step: StepData) -> torch.Tensor | float:
        if self.teacher is None:
            return 0.0
        text = self.segmenter.text_embeddings(step.vocabulary.subset(self.old_classes)).to(adapted.device)
        temperature = self.config.temperature
        with torch.no_grad():
            old = self.logits(self.teacher(inputs), text) / temperature  # (B, C_old, g, g)
        new = self.logits(adapted, text) / temperature
        per_cell = F.kl_div(new.log_softmax(1), old.log_softmax(1), log_target=True, reduction="none").sum(1)  # (B, g, g)
        return self.config.alpha * temperature ** 2 * per_cell.mean()

    def after_step(self, step: StepData, data: TrainingSet) -> None:
        self.teacher = copy.deepcopy(self.head).requires_grad_(False).eval()
        self.old_classes = sorted(step.seen_classes)

    def state_dict(self) -> dict:
        teacher = self.teacher.state_dict() if self.teacher is not None else None
        return {**super().state_dict(), "teacher": teacher, "old_classes": list(self.old_classes)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.old_classes = list(state["old_classes"])
        self.teacher = None
        if state["teacher"] is not None:
            self.teacher = copy.deepcopy(self.head).requires_grad_(False).eval()
            self.teacher.load_state_dict(state["teacher"])

    def memory_bytes(self) -> int:
        teacher = self.trainable_parameters() * 4 if self.teacher is not None else 0  # the teacher's trained part
        return super().memory_bytes() + teacher
