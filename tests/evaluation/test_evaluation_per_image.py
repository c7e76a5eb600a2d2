"""Per-image counts add up to the confusion matrix; the bootstrap's replicates equal the mIoU of the resampled
images computed the naive way (a confusion matrix summed over the drawn images, with repetitions)."""
import numpy as np
import pytest

from benchmark.evaluation.per_image import PerImageCounts, bootstrap_miou
from benchmark.evaluation.semantic import IGNORE_LABEL, SemanticEvaluator, mean_iou


def random_images(rng, count=7, classes=6):
    images = []
    for _ in range(count):
        gt = rng.integers(0, classes, (12, 10))
        gt[rng.random(gt.shape) < 0.2] = IGNORE_LABEL
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, classes, gt.shape))
        pred[gt == IGNORE_LABEL] = rng.integers(0, classes, int((gt == IGNORE_LABEL).sum()))
        images.append((pred, gt))
    return images


def counts_of(images, classes=6):
    counts, evaluator = PerImageCounts(classes), SemanticEvaluator(classes)
    for index, (pred, gt) in enumerate(images):
        evaluator.process(pred, gt)
        counts.record(index, evaluator.confusion)
    return counts.gathered()


def test_per_image_counts_sum_to_the_confusion_matrix():
    images = random_images(np.random.default_rng(0))
    evaluator = SemanticEvaluator(6)
    for pred, gt in images:
        evaluator.process(pred, gt)
    counts = counts_of(images)
    confusion = evaluator.confusion
    assert int(counts["image_count"]) == 7
    for name, reference in (("image_tp", np.diag(confusion)), ("image_gt", confusion.sum(1)),
                            ("image_pred", confusion.sum(0))):
        assert np.array_equal(np.bincount(counts["image_class"], weights=counts[name], minlength=6), reference)


def test_bootstrap_replicates_equal_the_naive_miou_of_each_resample():
    rng = np.random.default_rng(1)
    runs_images = [random_images(rng), random_images(rng)]  # two runs on the same 7 images
    classes = [0, 2, 3, 5]
    replicates = bootstrap_miou([counts_of(images) for images in runs_images], classes, samples=5, seed=3)
    draws = np.random.default_rng(3).multinomial(7, np.full(7, 1 / 7), size=5)  # the same draws
    for replicate, weights in zip(replicates, draws):
        per_run = []
        for images in runs_images:
            evaluator = SemanticEvaluator(6)
            for (pred, gt), times in zip(images, weights):
                for _ in range(times):
                    evaluator.process(pred, gt)
            per_run.append(mean_iou(evaluator.confusion, classes, "present"))
        assert replicate == pytest.approx(np.mean(per_run), abs=1e-9)


def test_each_images_counts_are_that_image_alone():
    images = random_images(np.random.default_rng(2))
    counts = counts_of(images)
    for index, (pred, gt) in enumerate(images):
        alone = SemanticEvaluator(6)
        alone.process(pred, gt)
        mine = counts["image_index"] == index
        for name, reference in (("image_tp", np.diag(alone.confusion)), ("image_gt", alone.confusion.sum(1)),
                                ("image_pred", alone.confusion.sum(0))):
            got = np.bincount(counts["image_class"][mine], weights=counts[name][mine], minlength=6)
            assert np.array_equal(got, reference)
