"""The FC-CLIP exporter's conversion, on tensors of FC-CLIP's shapes (detectron2 is not installed here)."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark.__main__ import main
from benchmark.data.types import ClassInfo, ImageInput, Vocabulary
from benchmark.exporters.fcclip import fcclip_image_arrays
from benchmark.models.cached import CachedSegmenter, write_image_predictions, write_meta

# FC-CLIP on ADE20K-847: 250 queries, 847 classes + void, masks at stride 4 of the padded input (shrunk here
# from 640 x 864 to 64 x 96 to keep the test fast); the resized input before padding is 64 x 85
QUERIES, CLASSES, PADDED, INPUT, ORIGINAL = 250, 847, (64, 96), (64, 85), (51, 68)


def fcclip_like_outputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ensemble = torch.randn(QUERIES, CLASSES, generator=generator).mul(3).softmax(-1)
    void = torch.rand(QUERIES, 1, generator=generator)
    mask_cls = torch.log(torch.cat([ensemble * (1 - void), void], -1) + 1e-8)  # FC-CLIP's final mask_cls_results
    mask_pred = torch.randn(QUERIES, PADDED[0] // 4, PADDED[1] // 4, generator=generator).mul(8)
    return mask_cls, mask_pred, torch.randn(QUERIES, 768, generator=generator)


def test_conversion_reads_back_within_the_stated_bound(tmp_path):
    import torch.nn.functional as F

    mask_cls, mask_pred, embeddings = fcclip_like_outputs()
    arrays = fcclip_image_arrays(mask_cls, mask_pred, INPUT, PADDED, embeddings)
    assert arrays["mask_logits"].shape == (QUERIES, 16, 24) and arrays["mask_logits"].dtype == np.uint16
    assert arrays["class_logprobs"].shape == (QUERIES, CLASSES + 1)
    vocab = Vocabulary("ade847", tuple(ClassInfo(i, f"c{i}", (f"c{i}",), i % 2 == 0) for i in range(CLASSES)))
    write_meta(tmp_path, "ade847", vocab.ids, void=True, embedding_dim=768, producer="test")
    write_image_predictions(tmp_path, "img", arrays)
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(tmp_path), "batch_size": 1}))
    feats = segmenter.image_features([ImageInput("img", np.zeros((*ORIGINAL, 3), np.uint8))])[0]
    # FC-CLIP's own path on the unquantised logits: upsample to the padded input, crop, upsample, sigmoid
    exact = F.interpolate(mask_pred[None], size=PADDED, mode="bilinear", align_corners=False)[0]
    exact = F.interpolate(exact[None, :, :INPUT[0], :INPUT[1]], size=ORIGINAL, mode="bilinear", align_corners=False)[0]
    error = (feats.soft_masks.probabilities() - exact.sigmoid()).abs().max().item()
    print(f"max mask probability error after quantisation: {error:.2e}")
    assert 0 < error <= 64 / (4 * 65535) + 1e-6
    probs = torch.cat([segmenter.base_probs(feats, vocab), segmenter.void_probs(feats, vocab)[:, None]], 1)
    assert torch.equal(probs, mask_cls.softmax(-1))  # FC-CLIP's softmax(mask_cls), void last
    assert torch.allclose(feats.embeddings, F.normalize(embeddings, dim=-1))


def test_conversion_refuses_mismatched_shapes():
    mask_cls, mask_pred, _ = fcclip_like_outputs()
    with pytest.raises(ValueError, match="mask_cls must be"):
        fcclip_image_arrays(mask_cls[:10], mask_pred, INPUT, PADDED)
    with pytest.raises(ValueError, match="does not cover the padded input"):
        fcclip_image_arrays(mask_cls, mask_pred, INPUT, (64, 100))
    with pytest.raises(ValueError, match="must lie within padded_size"):
        fcclip_image_arrays(mask_cls, mask_pred, (70, 85), PADDED)


def test_exporter_needs_fcclip_and_says_so(tmp_path, capsys):
    try:
        import detectron2  # noqa: F401
        pytest.skip("detectron2 is installed here")
    except ImportError:
        pass
    args = ["export-fcclip", "--config-file", "x.yaml", "--weights", "w.pth", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "runs inside an FC-CLIP checkout with detectron2 installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written half-way


def test_perf_predictions_prints_bytes_per_image(capsys):
    args = ["perf", "predictions", "--queries", "4", "--classes", "5", "--image-size", "40x50", "--short-side",
            "64", "--embedding-dim", "8", "--images", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # input 64x80 padded to 64x96; 4 queries x (16 x 24) uint16 mask logits + 4 x 6 float32 log-probs + two
    # int32 pairs, exactly
    assert "masks 16x24" in out
    assert out.splitlines()[2].split()[:5] == ["v2", "(uint16", "mask", "logits)", str(4 * 16 * 24 * 2 + 4 * 6 * 4 + 16)]
    assert main([*args[:-2], "--image-size", "40by50"]) == 2
    assert "--image-size 40by50 is not HEIGHTxWIDTH" in capsys.readouterr().err
