"""benchmark.integrations.avalanche.make_benchmark: an Avalanche benchmark over a stream, trained by Avalanche's
own Naive strategy (its loop, its plugins) with a tiny segmentation net over two demo experiences."""
import numpy as np
import pytest
import torch

import streams
from benchmark.integrations.avalanche import make_benchmark


@pytest.fixture(scope="module")
def bm(demo_root):
    return make_benchmark("demo_4steps", data_root=demo_root, image_size=32, max_train_images_per_step=4)


def test_one_experience_per_step(bm):
    stream = bm.covseg_stream
    assert len(bm.train_stream) == len(bm.test_stream) == stream.num_steps
    for t, (train, test) in enumerate(zip(bm.train_stream, bm.test_stream)):
        step = stream.steps[t]
        for experience in (train, test):
            assert experience.current_experience == t
            assert experience.classes_in_this_experience == step.classes
            assert experience.classes_seen_so_far == step.seen
            assert set(experience.previous_classes) | set(step.classes) == set(step.seen)
            assert set(experience.future_classes) | set(step.seen) == set(range(stream.num_classes))
        assert len(train.dataset) == len(step.image_ids)
        x, y, task = train.dataset[0]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
        assert y.shape == (32, 32) and y.dtype == torch.int64 and task == 0
        assert set(y.unique().tolist()) <= set(step.classes) | {streams.IGNORE_LABEL}
        assert set(train.dataset.targets) <= set(step.classes)  # class-aware avalanche parts read these
        _, y_test, _ = test.dataset[0]
        assert set(y_test.unique().tolist()) <= set(step.classes) | {streams.IGNORE_LABEL}
        assert (y_test != streams.IGNORE_LABEL).any()  # test experience t: images holding a pixel of C_t


def test_naive_strategy_trains_on_two_experiences(bm):
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.supervised import Naive

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, bm.covseg_stream.num_classes, 3, padding=1)  # a tiny segmentation net
    before = model.weight.detach().clone()
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=torch.nn.CrossEntropyLoss(ignore_index=streams.IGNORE_LABEL), train_mb_size=2,
                     train_epochs=1, eval_mb_size=4, plugins=[ReplayPlugin(mem_size=4)],
                     evaluator=EvaluationPlugin(loggers=[]))
    for experience in bm.train_stream[:2]:
        strategy.train(experience)
        assert strategy.clock.train_exp_counter == experience.current_experience + 1
    assert not torch.equal(before, model.weight)
    strategy.eval(bm.test_stream[:1])
    logits = model(bm.test_stream[0].dataset[0][0][None])
    assert logits.shape == (1, bm.covseg_stream.num_classes, 32, 32) and np.isfinite(logits.detach().numpy()).all()
