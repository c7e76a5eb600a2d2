"""`method=avalanche method.strategy=NAME`: an avalanche-lib training strategy (Naive, Replay, EWC, LwF, ...)
drives the training loop of the shared trainable head (baselines/trainable.py); prediction and evaluation stay
the harness's own.

How our dense task meets avalanche's classification-shaped API:
- an experience per step: an AvalancheDataset of (frozen inputs, label grid of full-vocabulary positions,
  task label 0); its `targets` attribute (what class-aware parts of avalanche read: LwF's distilled units,
  ClassBalancedBuffer) is each image's most frequent labelled class;
- the model outputs (B, C, g, g) logits over the dataset's class-id space, classes not yet seen masked to a
  large negative logit (so training sees S_t, as in our own baselines); the text embedding of a class is
  filled in when the stream reveals it (a method never learns future class names); the criterion is the same pixel-wise
  cross-entropy (`pixel_cross_entropy`);
- evaluator: an empty `EvaluationPlugin()`: avalanche's accuracy metrics never run on dense targets;
- shuffling and avalanche's random choices draw from torch's global generator, forked and seeded per step.
`method.strategy_args` passes further constructor arguments (`+method.strategy_args.mem_size=40` for Replay,
`+method.strategy_args.ewc_lambda=100` for EWC). Avalanche is imported when the method is built (it is slow).
The strategy's own state (replay buffers, importances, teachers, its clock) lives in avalanche objects:
`state_dict` holds the whole strategy pickled (as avalanche's own `save_checkpoint` does, but with the
standard pickler: dill 0.4 cannot pickle torch's optimizer classes), so a resumed run continues exactly where
it stopped.
"""
from __future__ import annotations

import copy
import inspect
import io
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from baselines.trainable import (IGNORE_INDEX, AdaptedFeatures, TrainConfig, TrainedHeadMethod, TrainingDiverged,
                                 class_index_targets, pixel_cross_entropy)
from benchmark.errors import UserError
from benchmark.method import StepData, register_method
from benchmark.registry import suggest

INACTIVE_LOGIT = -1e4  # logit of classes not seen yet (finite: distillation losses stay finite)


# constructor arguments the adapter passes itself (strategy_args may not set them)
HARNESS_ARGUMENTS = ("model", "optimizer", "criterion", "train_mb_size", "train_epochs", "device", "plugins",
                     "evaluator", "eval_every")


def available_strategies() -> dict[str, type]:
    """Avalanche's supervised strategies by class name."""
    import avalanche.training.supervised as supervised
    from avalanche.training.templates import SupervisedTemplate

    return {name: obj for name, obj in vars(supervised).items()
            if isinstance(obj, type) and issubclass(obj, SupervisedTemplate) and obj is not SupervisedTemplate}


def check_strategy(name: str, strategy_args: dict) -> None:
    """Refuse, in one line and before any run folder exists, a strategy that is not avalanche's, a required
    constructor argument that `strategy_args` does not give (EWC's ewc_lambda, LwF's alpha and temperature,
    GEM's patterns_per_exp, ...), an argument no constructor of the strategy takes or one the adapter sets, and
    GEM without the quadprog solver its plugin calls through qpsolvers."""
    strategies = available_strategies()
    if name not in strategies:
        raise UserError(f"method.strategy='{name}' is not an avalanche strategy{suggest(name, sorted(strategies))}; "
                        f"available: {', '.join(sorted(strategies))}")
    strategy_cls = strategies[name]
    own = inspect.signature(strategy_cls.__init__).parameters
    required = [key for key, p in own.items() if key != "self" and p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    missing = [key for key in required if key not in HARNESS_ARGUMENTS and key not in strategy_args]
    if missing:
        raise UserError(f"avalanche strategy {name} needs {', '.join(missing)}; set "
                        + " ".join(f"+method.strategy_args.{key}=VALUE" for key in missing))
    clashing = sorted(set(strategy_args) & set(HARNESS_ARGUMENTS))
    if clashing:
        raise UserError(f"method.strategy_args.{clashing[0]} is set by the harness; use the method's own keys "
                        "(method.epochs, method.batch_size, method.lr, ...)")
    accepted = {key for klass in strategy_cls.__mro__ if "__init__" in vars(klass)
                for key in inspect.signature(klass.__init__).parameters}
    unknown = sorted(set(strategy_args) - accepted)
    if unknown:
        raise UserError(f"avalanche strategy {name} takes no argument '{unknown[0]}'"
                        f"{suggest(unknown[0], sorted(accepted - {'self', 'kwargs', *HARNESS_ARGUMENTS}))}")
    if name == "GEM":
        import qpsolvers

        if "quadprog" not in qpsolvers.available_solvers:
            raise UserError("avalanche strategy GEM solves its projections with the quadprog solver, which is not "
                            "installed; pip install quadprog (or the extra: pip install 'covseg-bench[avalanche]')")


class DenseTextClassifier(nn.Module):
    """Adapted dense features against the text embeddings of the classes revealed so far: (B, C, g, g) logits
    over the whole class-id space (rows of classes not yet revealed are zero, and masked)."""

    def __init__(self, head: AdaptedFeatures, text: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("text", text)  # (C, D) frozen classifier
        self.register_buffer("active", torch.zeros(len(text), dtype=torch.bool))  # classes of S_t
        self.logit_scale = logit_scale

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = (self.logit_scale * self.head(inputs) @ self.text.T).permute(0, 3, 1, 2)  # (B, C, g, g)
        return logits.masked_fill(~self.active[None, :, None, None], INACTIVE_LOGIT)


@lru_cache(maxsize=1)
def _stop_on_non_finite_loss_class() -> type:
    """An avalanche plugin that ends the run with a clear message when the loss becomes NaN or infinite. Built
    on first use (avalanche is slow to import) and reachable as this module's `StopOnNonFiniteLoss`, so a
    pickled strategy finds it again."""
    from avalanche.training.plugins import SupervisedPlugin

    class StopOnNonFiniteLoss(SupervisedPlugin):
        def __init__(self, strategy_name: str, lr: float) -> None:
            super().__init__()
            self.strategy_name, self.lr = strategy_name, lr

        def before_backward(self, strategy, **kwargs) -> None:
            if not torch.isfinite(strategy.loss):
                raise TrainingDiverged(
                    f"method avalanche ({self.strategy_name}): training loss is {strategy.loss.item()} at step "
                    f"{strategy.clock.train_exp_counter}; the run stops here, earlier steps are saved. "
                    f"Lower method.lr (now {self.lr})")

    StopOnNonFiniteLoss.__module__, StopOnNonFiniteLoss.__qualname__ = __name__, "StopOnNonFiniteLoss"
    return StopOnNonFiniteLoss


def __getattr__(name: str):  # PEP 562: the plugin class appears on first access (unpickling included)
    if name == "StopOnNonFiniteLoss":
        return _stop_on_non_finite_loss_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PixelCrossEntropy(nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pixel_cross_entropy(logits, targets)


@register_method("avalanche")
class AvalancheStrategy(TrainedHeadMethod):
    method_name = "avalanche"

    @dataclass
    class Config(TrainConfig):
        strategy: str = "Naive"  # avalanche strategy class: Naive, Replay, EWC, LwF, ... (avalanche.training)
        strategy_args: Dict[str, Any] = field(default_factory=dict)  # further constructor arguments, e.g. {mem_size: 40}

        def __post_init__(self) -> None:  # runs when the config is validated: before any run folder exists
            check_strategy(self.strategy, dict(self.strategy_args))

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        if self.cached is not None:
            raise UserError("method=avalanche on model=cached is not available yet: its strategies train the dense "
                            "head; use finetune, replay, joint or ewc")
        check_strategy(config.strategy, dict(config.strategy_args))
        self.strategy_cls = available_strategies()[config.strategy]
        text = torch.zeros(num_classes, segmenter.embed_dim)  # (C, D): filled as classes are revealed
        self.model = DenseTextClassifier(self.head, text, segmenter.logit_scale).to(segmenter.device)
        self.vocab_ids = list(range(num_classes))
        self.strategy = None  # built at the first step, kept across steps (its plugins hold the CL state)

    def _build_strategy(self):
        from avalanche.training.plugins import EvaluationPlugin

        stop_on_nan = _stop_on_non_finite_loss_class()(self.config.strategy, self.config.lr)
        try:
            return self.strategy_cls(
                model=self.model, optimizer=self.make_optimizer(), criterion=PixelCrossEntropy(),
                train_mb_size=self.config.batch_size, train_epochs=self.config.epochs, device=self.segmenter.device,
                plugins=[stop_on_nan], evaluator=EvaluationPlugin(loggers=[]), eval_every=-1,
                **self.config.strategy_args)
        except TypeError as exc:
            raise UserError(f"avalanche strategy {self.config.strategy} refused its arguments ({exc}); "
                            f"set them with +method.strategy_args.NAME=VALUE") from None

    def learn(self, step: StepData) -> None:
        from avalanche.benchmarks.scenarios import DatasetExperience
        from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
        from avalanche.benchmarks.utils import DataAttribute
        from avalanche.benchmarks.utils.classification_dataset import TaskAwareClassificationDataset

        data = self.training_set(self.training_samples(step))
        if len(data) == 0:
            return
        if self.strategy is None:
            self.strategy = self._build_strategy()
        # avalanche trains on in-memory tensors: the step's set is read back from its store whole
        inputs, targets = data.batch(range(len(data)))
        data.close()
        targets = class_index_targets(targets, self.vocab_ids)  # (N, g·s, g·s) full-vocabulary positions
        majority = [int(np.bincount(t[t != IGNORE_INDEX].numpy()).argmax()) for t in targets]
        dataset = TaskAwareClassificationDataset(  # task-aware: LwF reads its task_set
            [torch.utils.data.TensorDataset(inputs, targets)],
            data_attributes=[DataAttribute(majority, "targets"),
                             DataAttribute([0] * len(data), "targets_task_labels", use_in_getitem=True)])
        seen = torch.as_tensor([self.vocab_ids.index(c) for c in step.vocabulary.ids])
        self.model.text[seen] = self.segmenter.text_embeddings(step.vocabulary).to(self.model.text.device)
        self.model.active.zero_()
        self.model.active[seen] = True
        experience = DatasetExperience(dataset=dataset)
        EagerCLStream("train", [experience])  # avalanche wants each experience to belong to a stream
        experience.current_experience = step.step
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + step.step)
            self.strategy.train(experience)
        self.head.eval()

    # attributes that only hold the last step's data while training; cleared before pickling
    TRANSIENT = ("experience", "adapted_dataset", "dataloader", "mbatch", "mb_output", "loss", "_eval_streams")

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.strategy is not None:
            strategy = copy.copy(self.strategy)
            for name in self.TRANSIENT:
                if hasattr(strategy, name):
                    setattr(strategy, name, None)
            buffer = io.BytesIO()
            torch.save(strategy, buffer)
            state["strategy"] = buffer.getvalue()
        return state

    def memory_bytes(self) -> int:
        """The head's trained parameters plus every tensor the strategy's plugins keep across steps (replay
        buffers and the step data they reference, EWC importances and parameters, LwF's previous model, GEM's
        memory), each storage once; the live model itself is the head, counted once."""
        if self.strategy is None:
            return super().memory_bytes()
        from benchmark.memory import reachable_bytes

        kept = reachable_bytes(self.strategy.plugins, exclude=[self.strategy, self.model, self.segmenter])
        return super().memory_bytes() + kept

    def load_state_dict(self, state: dict) -> None:
        if state.get("strategy") is None:
            super().load_state_dict(state)
            return
        self.strategy = torch.load(io.BytesIO(state["strategy"]), map_location=self.segmenter.device,
                                   weights_only=False)  # our own checkpoint file
        self.model = self.strategy.model  # the strategy's optimizer and plugins refer to these very modules
        self.head = self.model.head
