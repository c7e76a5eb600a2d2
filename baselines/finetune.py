"""Fine-tuning: the trainable head learns step t from step t's data only (labels of C_t). Nothing protects
the classes of earlier steps, so it shows how much a learning baseline forgets."""
from __future__ import annotations

from dataclasses import dataclass

from baselines.trainable import TrainConfig, TrainedHeadMethod
from benchmark.method import register_method


@register_method("finetune")
class Finetune(TrainedHeadMethod):
    method_name = "finetune"

    @dataclass
    class Config(TrainConfig):
        pass
