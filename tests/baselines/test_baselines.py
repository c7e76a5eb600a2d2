"""The learning baselines' building blocks: loss, label sampling, zero-shot start, state round trip, errors."""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.trainable import IGNORE_INDEX, class_index_targets, label_grid, pixel_cross_entropy
from benchmark.data.types import IGNORE_LABEL
from benchmark.errors import UserError
from benchmark.plugins import load_methods
from benchmark.run.checkpoint import load_checkpoint
from project_methods import build, step_data

load_methods()


def test_pixel_cross_entropy_equals_cross_entropy_of_nearest_upsampled_logits():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, 4, generator=generator)  # (B, C, g, g)
    targets = torch.randint(0, 5, (3, 12, 12), generator=generator)  # s = 3 samples per cell side
    targets[torch.rand(3, 12, 12, generator=generator) < 0.3] = IGNORE_INDEX
    upsampled = logits.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)  # (B, C, 12, 12)
    reference = F.cross_entropy(upsampled, targets, ignore_index=IGNORE_INDEX)
    assert torch.allclose(pixel_cross_entropy(logits, targets), reference, atol=1e-6)


def test_pixel_cross_entropy_of_nothing_labelled_is_zero_not_nan():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = pixel_cross_entropy(logits, torch.full((1, 4, 4), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()  # still differentiable


def test_label_grid_samples_cell_centres_nearest():
    sem_seg = np.arange(8 * 8, dtype=np.uint16).reshape(8, 8)
    # 2 cells x 2 samples per side on an 8 x 8 map: sample centres at rows/cols (0.5 + i) * 8 / 4 = 1, 3, 5, 7
    assert label_grid(sem_seg, grid=2, samples_per_cell=2).tolist() == [[9, 11, 13, 15], [25, 27, 29, 31],
                                                                       [41, 43, 45, 47], [57, 59, 61, 63]]


def test_class_index_targets_maps_seen_classes_and_ignores_the_rest():
    targets = torch.tensor([[7, 3], [IGNORE_LABEL, 5]])
    assert class_index_targets(targets, [3, 7]).tolist() == [[1, 0], [IGNORE_INDEX, IGNORE_INDEX]]


@pytest.mark.parametrize("trainable", ["head", "last_block"])
def test_untrained_head_predicts_exactly_like_zeroshot(demo_parts, trainable):
    segmenter, train, samples = demo_parts
    vocab = train.vocabulary
    untrained = build("finetune", segmenter, vocab, trainable=trainable, hidden=16)
    zeroshot = build("zeroshot", segmenter, vocab)
    for ours, reference in zip(untrained.predict(samples, vocab), zeroshot.predict(samples, vocab)):
        assert np.array_equal(ours.sem_seg, reference.sem_seg)
    assert untrained.trainable_parameters() > (0 if trainable == "head" else 128 * 128)


def test_replay_state_round_trip_restores_memory_and_predictions(demo_parts):
    segmenter, train, samples = demo_parts
    vocab = train.vocabulary
    params = dict(epochs=2, mem_size=5, storage="reservoir")
    learner = build("replay", segmenter, vocab, **params)
    learner.learn(step_data(train, 0, list(range(0, 20)), list(range(0, 20))))
    learner.learn(step_data(train, 1, list(range(20, 40)), list(range(40))))
    records = learner.memory.records()
    assert len(records) == 5 and {r[1] for r in records} <= {0, 1}
    assert learner.memory_bytes() == learner.trainable_parameters() * 4 + sum(h * w * 5 for _, _, h, w in records)
    assert sorted(learner.kept) == sorted(r[0] for r in records)  # it holds exactly the images in its memory

    resumed = build("replay", segmenter, vocab, **params)
    resumed.load_state_dict(learner.state_dict())
    assert resumed.memory.records() == records and resumed.memory_bytes() == learner.memory_bytes()
    for a, b in zip(learner.predict(samples, vocab), resumed.predict(samples, vocab)):
        assert np.array_equal(a.sem_seg, b.sem_seg)


def test_experience_balanced_memory_splits_over_steps(demo_parts):
    segmenter, train, _ = demo_parts
    learner = build("replay", segmenter, train.vocabulary, epochs=1, mem_size=4, storage="experience_balanced")
    learner.learn(step_data(train, 0, list(range(0, 20)), list(range(0, 20))))
    learner.learn(step_data(train, 1, list(range(20, 40)), list(range(40))))
    assert sorted(r[1] for r in learner.memory.records()) == [0, 0, 1, 1]


@pytest.mark.parametrize("name, params", [("ewc", {"lambda_": 10.0}), ("lwf", {"alpha": 1.0})])
def test_regularised_baselines_store_their_state(demo_parts, name, params):
    segmenter, train, samples = demo_parts
    vocab = train.vocabulary
    learner = build(name, segmenter, vocab, epochs=1, **params)
    before = learner.memory_bytes()
    learner.learn(step_data(train, 0, list(range(0, 20)), list(range(0, 20))))
    learner.learn(step_data(train, 1, list(range(20, 40)), list(range(40))))
    stored_copies = 2 if name == "ewc" else 1  # ewc: Fisher + anchor; lwf: the teacher (trained part)
    assert learner.memory_bytes() == before + stored_copies * learner.trainable_parameters() * 4
    resumed = build(name, segmenter, vocab, epochs=1, **params)
    resumed.load_state_dict(learner.state_dict())
    for a, b in zip(learner.predict(samples, vocab), resumed.predict(samples, vocab)):
        assert np.array_equal(a.sem_seg, b.sem_seg)


def test_bad_parameters_are_one_line_user_errors(demo_parts):
    segmenter, train, _ = demo_parts
    with pytest.raises(UserError, match="method.trainable='all'"):
        build("finetune", segmenter, train.vocabulary, trainable="all")
    with pytest.raises(UserError, match="method.storage='fifo'"):
        build("replay", segmenter, train.vocabulary, storage="fifo")


def test_unknown_avalanche_strategy_lists_the_available_ones(run_demo):
    with pytest.raises(UserError) as error:
        run_demo("method=avalanche", "method.strategy=NoSuchStrategy")
    message = str(error.value)
    assert "\n" not in message and "NoSuchStrategy" in message
    for strategy in ("Naive", "Replay", "EWC", "LwF"):
        assert strategy in message.split("available:")[1].split(", ")


@pytest.mark.parametrize("strategy, args", [("Replay", ["+method.strategy_args.mem_size=6"]),
                                            ("EWC", ["+method.strategy_args.ewc_lambda=10.0"]),
                                            ("LwF", ["+method.strategy_args.alpha=1.0", "+method.strategy_args.temperature=2.0"])])
def test_avalanche_strategies_run_on_dense_targets(run_demo, strategy, args):
    run_dir, summary = run_demo("method=avalanche", f"method.strategy={strategy}", *args, "method.epochs=1",
                                "stream.num_steps=2", "eval.max_images=4", "stream.max_train_images_per_step=8")
    assert summary["num_steps"] == 2 and summary["trainable_parameters"][0] > 0
    # the checkpoint holds the strategy itself (its buffers, importances or teacher), not only the head
    restored = torch.load(io.BytesIO(load_checkpoint(run_dir)["method"]["strategy"]), weights_only=False)
    assert type(restored).__name__ == strategy and restored.clock.train_exp_counter == 2
    assert restored.optimizer.param_groups[0]["params"][0] is next(restored.model.parameters())


def test_nan_loss_stops_the_run_naming_method_and_step_and_keeps_earlier_steps(run_demo, monkeypatch, tmp_path):
    import baselines.trainable as trainable

    calls = {"step": None}
    real_loss = trainable.pixel_cross_entropy

    def loss_nan_from_step_1(logits, targets):
        loss = real_loss(logits, targets)
        return loss * float("nan") if calls["step"] == 1 else loss

    real_fit = trainable.TrainedHeadMethod.fit

    def fit(self, data, step):
        calls["step"] = step.step
        return real_fit(self, data, step)

    monkeypatch.setattr(trainable, "pixel_cross_entropy", loss_nan_from_step_1)
    monkeypatch.setattr(trainable.TrainedHeadMethod, "fit", fit)
    with pytest.raises(trainable.TrainingDiverged, match=r"method finetune: training loss is nan at step 1") as error:
        run_demo("method=finetune", "stream.num_steps=2", "eval.max_images=4", "stream.max_train_images_per_step=6")
    assert isinstance(error.value, UserError) and "\n" not in str(error.value)
    steps = list((tmp_path / "results").glob("demo_4steps/finetune/*/stats/step_*.npz"))
    assert [p.name for p in steps] == ["step_000.npz"]


def test_learning_from_a_background_protocols_labels(demo_parts):
    """protocol=mib relabels other classes and void as BACKGROUND_LABEL (benchmark/protocol.py): joint keeps the
    classes earlier steps revealed (a later step's background must not overwrite them), kNN-CLIP stores no
    background entry, and the trained baselines skip it."""
    from benchmark.config import load_config
    from benchmark.data.types import BACKGROUND_LABEL
    from benchmark.method import StepData, filter_sample
    from benchmark.protocol import Protocol

    segmenter, train, samples = demo_parts
    vocab = train.vocabulary
    mib = Protocol.of(load_config(["protocol=mib"]).protocol, vocab)
    first, second = list(range(0, 20)), list(range(20, 40))
    images = [i for i in range(len(train)) if set(train.classes_present(i)) & set(first)
              and set(train.classes_present(i)) & set(second)][:4]  # each image in both steps (overlap)

    def steps():
        return [StepData.of_stream(t, classes, seen, vocab, train, images, relabel=mib.training_labels)
                for t, (classes, seen) in enumerate(((first, first), (second, first + second)))]

    assert any((s.sem_seg == BACKGROUND_LABEL).any() for s in steps()[1].samples())
    joint = build("joint", segmenter, vocab, epochs=1)
    knn = build("knnclip", segmenter, vocab)
    for step in steps():
        joint.learn(step)
        knn.learn(step)
    for image, row in joint.seen.items():
        sample = train.load(images[[train.image_id(i) for i in images].index(image)])
        expected = label_grid(filter_sample(sample, first + second).sem_seg, joint.grid,
                              joint.config.label_samples_per_cell)
        assert np.array_equal(joint.store.targets.read([row])[0], expected)
    assert knn.database.labels.max() < len(vocab)
    for output in knn.predict(samples, vocab) + joint.predict(samples, vocab):
        assert set(np.unique(output.sem_seg)) <= set(vocab.ids)
