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
