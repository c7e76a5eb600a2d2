import math

import numpy as np
import pytest
import torch

from methods.knnclip.database import RetrievalDatabase
from methods.knnclip.fusion import fuse, retrieval_confidence, retrieval_probs

SIMS = torch.tensor([[0.9, 0.8, 0.5]])
LABELS = torch.tensor([[2, 5, 2]])
CLASSES = [2, 5, 7]


def test_similarity_votes_golden():
    p = retrieval_probs(SIMS, LABELS, CLASSES, tau=0.1, vote="similarity")
    e9, e8, e5 = math.exp(9), math.exp(8), math.exp(5)
    expected = [(e9 + e5) / (e9 + e8 + e5), e8 / (e9 + e8 + e5), 0.0]  # ~ [0.7346, 0.2654, 0]
    assert p[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert p[0, 0].item() == pytest.approx(0.734612, abs=1e-6)


def test_uniform_votes_and_confidences_golden():
    p = retrieval_probs(SIMS, LABELS, CLASSES, tau=0.1, vote="uniform")
    assert p[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert retrieval_confidence(p, SIMS, LABELS, "max_prob").item() == pytest.approx(2 / 3)
    assert retrieval_confidence(p, SIMS, LABELS, "mean_sim").item() == pytest.approx((0.9 + 0.8 + 0.5) / 3)


def test_neighbours_outside_vocabulary_or_missing_are_dropped():
    p = retrieval_probs(SIMS, torch.tensor([[9, 2, -1]]), CLASSES, tau=0.1)
    assert p[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    none = retrieval_probs(SIMS, torch.tensor([[9, -1, 11]]), CLASSES, tau=0.1)
    assert none.sum().item() == 0 and retrieval_confidence(none, SIMS, torch.tensor([[9, -1, 11]])).item() == 0


def test_fusion_threshold_and_weight_golden():
    p_base = torch.tensor([[0.2, 0.3, 0.5]])
    p_ret = torch.tensor([[0.8, 0.2, 0.0]])
    conf = torch.tensor([0.8])
    assert fuse(p_base, p_ret, conf, threshold=0.7, weight=0.5, void_probs=torch.zeros(1))[0][0].tolist() == pytest.approx([0.5, 0.25, 0.25])
    assert fuse(p_base, p_ret, conf, threshold=0.9, weight=0.5, void_probs=torch.zeros(1))[0][0].tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert fuse(p_base, p_ret, conf, threshold=0.8, weight=1.0, void_probs=torch.zeros(1))[0][0].tolist() == pytest.approx([0.8, 0.2, 0.0])


def test_database_search_persist_and_reload_identical():
    rng = np.random.default_rng(0)
    vectors = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(50, 16)).astype(np.float32)), dim=1)
    labels = rng.integers(0, 5, size=50)
    db = RetrievalDatabase(16, "Flat")
    db.add(vectors, labels)
    sims, found = db.search(vectors[:3], k=1)
    assert found[:, 0].tolist() == labels[:3].tolist() and sims[:, 0].tolist() == pytest.approx([1, 1, 1], abs=1e-5)
    clone = RetrievalDatabase(16, "Flat")
    clone.load_state_dict(db.state_dict())
    assert torch.equal(clone.search(vectors, 5)[0], db.search(vectors, 5)[0])
    assert torch.equal(clone.search(vectors, 5)[1], db.search(vectors, 5)[1])
    assert db.memory_bytes() >= 50 * 16 * 4 + 50 * 4  # float32 vectors and int32 labels, plus headers
    empty_sims, empty_labels = RetrievalDatabase(16).search(vectors[:2], 4)
    assert (empty_labels == -1).all()


def cached_segmenter_with_an_empty_mask(folder):
    """A v3 folder, one 8 x 8 image, three queries with embeddings e_0, e_1, e_2; query 1's mask logits are
    negative everywhere (empty at the 0.5 cut), the others cover the image."""
    from omegaconf import OmegaConf

    from benchmark.models.cached.format import image_arrays, write_image_predictions, write_meta
    from benchmark.models.cached.segmenter import CachedSegmenter

    mask_logits = np.full((3, 2, 2), 6.0, dtype=np.float32)
    mask_logits[1] = -3.0
    class_logits = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])  # classes 0, 1 and void
    write_meta(folder, "toy", [0, 1], void=True, embedding_dim=3, producer="test")
    write_image_predictions(folder, "img", image_arrays(mask_logits, class_logits, (8, 8), (8, 8), torch.eye(3)))
    return CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(folder), "batch_size": 1}))


def test_empty_mask_query_keeps_the_base_prediction(tmp_path, monkeypatch):
    """A query whose mask is empty is not searched: its probabilities and void stay the base model's, while
    the others fuse with a database sure of class 1 (confidence 1 >= T)."""
    import methods.knnclip.method as knn_module
    from benchmark.data.types import ClassInfo, ImageInput, Vocabulary

    segmenter = cached_segmenter_with_an_empty_mask(tmp_path)
    vocab = Vocabulary("toy", (ClassInfo(0, "wall", ("wall",)), ClassInfo(1, "floor", ("floor",))))
    method = knn_module.KnnClip(knn_module.KnnClip.Config(embedder="segmenter"), segmenter, num_classes=2)
    method.database.add(torch.eye(3), np.array([1, 1, 1]))  # every query's nearest entry says class 1
    fused = {}
    monkeypatch.setattr(knn_module, "outputs_from_probs",
                        lambda f, p, v, panoptic, void_probs, **_: fused.update(probs=p, void=void_probs))
    image = ImageInput("img", np.zeros((8, 8, 3), np.uint8))
    method.predict([image], vocab)
    feats = segmenter.image_features([image])[0]
    base, void = segmenter.base_probs(feats, vocab), segmenter.void_probs(feats, vocab)
    assert feats.nonempty_masks().tolist() == [True, False, True]
    assert torch.equal(fused["probs"][1], base[1]) and fused["void"][1] == void[1]  # the empty-mask query
    for query in (0, 2):  # fused (void=keep): 0.7 (1 - p_void) P_ret + 0.3 P_base
        expected = 0.7 * (1 - void[query]) * torch.tensor([0.0, 1.0]) + 0.3 * base[query]
        assert torch.allclose(fused["probs"][query], expected)


@pytest.mark.parametrize("model, embedder", [("tiny_random", "clip"), ("vit_b16_openai", "dinov2_vitl14"),
                                             ("cached", "dinov2_vitl14")])
def test_default_embedder_is_dinov2_with_a_real_model(model, embedder):
    from pathlib import Path
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from methods.knnclip.method import KnnClip, resolve_embedder

    config = OmegaConf.load(Path(__file__).parents[2] / "configs" / "model" / f"{model}.yaml")
    assert KnnClip.Config().embedder == "auto"
    assert resolve_embedder("auto", SimpleNamespace(config=config)) == embedder
    assert resolve_embedder("segmenter", SimpleNamespace(config=config)) == "segmenter"
