"""kNN-CLIP fusion with a base model's void class (method.void): golden numbers and their panoptic effect."""
import numpy as np
import pytest
import torch

from benchmark.data.types import ClassInfo, Vocabulary
from benchmark.models.mask_inference import SoftMasks, encode_mask_logits, outputs_from_soft_masks
from methods.knnclip.fusion import fuse

VOCAB = Vocabulary("toy", (ClassInfo(0, "person", ("person",), True), ClassInfo(1, "wall", ("wall",), False)))
# the query: FC-CLIP puts 0.5 on void, 0.4 on person; retrieval is sure it is a person
P_BASE, VOID = torch.tensor([[0.4, 0.1]]), torch.tensor([0.5])
P_RET, CONFIDENCE = torch.tensor([[1.0, 0.0]]), torch.tensor([1.0])


@pytest.mark.parametrize("mode, person, wall, void", [
    ("keep", 0.7 * 0.5 + 0.3 * 0.4, 0.3 * 0.1, 0.5),    # 0.47, 0.03, void 0.5: still void
    ("renormalise", 0.7 + 0.3 * 0.8, 0.3 * 0.2, 0.0),   # 0.94, 0.06
    ("drop", 0.7 + 0.3 * 0.4, 0.3 * 0.1, 0.0),          # 0.82, 0.03
])
def test_void_modes_golden(mode, person, wall, void):
    fused, fused_void = fuse(P_BASE, P_RET, CONFIDENCE, threshold=0.5, weight=0.7, void_probs=VOID, void=mode)
    assert fused[0].tolist() == pytest.approx([person, wall]) and fused_void.tolist() == pytest.approx([void])
    unfused, unfused_void = fuse(P_BASE, P_RET, torch.tensor([0.2]), 0.5, 0.7, VOID, mode)
    assert torch.equal(unfused, P_BASE) and torch.equal(unfused_void, VOID)  # below T: the base model as is


def test_void_modes_panoptic():
    """One soft mask covering a 4x4 image: with `keep` FC-CLIP's void decision stands (no segment); `drop` and
    `renormalise` turn the query into a person segment scored 0.82 and 0.94 (object threshold 0.8)."""
    masks = SoftMasks(encode_mask_logits(np.full((1, 2, 2), 10.0), 64.0), 64.0, (4, 4), (4, 4), (4, 4))
    results = {}
    for mode in ("keep", "renormalise", "drop"):
        fused, void = fuse(P_BASE, P_RET, CONFIDENCE, threshold=0.5, weight=0.7, void_probs=VOID, void=mode)
        results[mode] = outputs_from_soft_masks(masks, fused, void, VOCAB, panoptic=True)
    assert not results["keep"].segments and not results["keep"].pan_seg.any()
    for mode, score in (("drop", 0.82), ("renormalise", 0.94)):
        out = results[mode]
        assert [(s.category_id, s.isthing, s.area) for s in out.segments] == [(0, True, 16)]
        assert out.scores == pytest.approx([score]) and (out.pan_seg == 1).all()
    # semantic output is the same: void only weighs the query, and there is a single one
    assert all(np.array_equal(r.sem_seg, results["keep"].sem_seg) for r in results.values())
