"""The FC-CLIP exporter's conversion (format v3), on tensors of FC-CLIP's shapes (detectron2 is not installed here)."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark.__main__ import main
from benchmark.data.types import ClassInfo, ImageInput, Vocabulary
from benchmark.exporters.fcclip import fcclip_image_arrays
from benchmark.models.cached.format import write_image_predictions, write_meta
from benchmark.models.cached.segmenter import CachedSegmenter

# FC-CLIP on ADE20K-847: 250 queries, 847 classes + void, masks at stride 4 of the padded input (shrunk here
# from 640 x 864 to 64 x 96 to keep the test fast); the resized input before padding is 64 x 85
QUERIES, CLASSES, PADDED, INPUT, ORIGINAL = 250, 847, (64, 96), (64, 85), (51, 68)


def fcclip_like_outputs(seed: int = 0):
    """FC-CLIP's tensors before its ensemble: pred_logits and get_classification_logits' result (Q, K + 1)."""
    generator = torch.Generator().manual_seed(seed)
    class_logits = torch.randn(QUERIES, CLASSES + 1, generator=generator).mul(3)
    out_vocab = torch.randn(QUERIES, CLASSES + 1, generator=generator).mul(3)
    mask_pred = torch.randn(QUERIES, PADDED[0] // 4, PADDED[1] // 4, generator=generator).mul(8)
    return class_logits, out_vocab, mask_pred, torch.randn(QUERIES, 768, generator=generator)


@pytest.mark.parametrize("mask_dtype", ["float16", "float32"])
def test_conversion_reads_back_within_the_stated_bound(tmp_path, mask_dtype):
    import torch.nn.functional as F

    from benchmark.models.cached.format import ensemble_settings
    from benchmark.models.mask_inference import fcclip_class_logits

    class_logits, out_vocab, mask_pred, embeddings = fcclip_like_outputs()
    arrays = fcclip_image_arrays(class_logits, out_vocab, mask_pred, INPUT, PADDED, embeddings, mask_dtype=mask_dtype)
    assert arrays["mask_logits"].shape == (QUERIES, 16, 24) and arrays["mask_logits"].dtype == np.dtype(mask_dtype)
    assert arrays["class_logits"].shape == (QUERIES, CLASSES + 1)
    assert torch.equal(torch.from_numpy(arrays["out_vocab_logits"]), out_vocab[:, :-1])  # FC-CLIP drops its void
    vocab = Vocabulary("ade847", tuple(ClassInfo(i, f"c{i}", (f"c{i}",), i % 2 == 0) for i in range(CLASSES)))
    overlap = [i % 3 == 0 for i in range(CLASSES)]
    write_meta(tmp_path, "ade847", vocab.ids, void=True, embedding_dim=768, producer="test",
               ensemble=ensemble_settings(0.4, 0.8, False, overlap))
    write_image_predictions(tmp_path, "img", arrays)
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(tmp_path), "batch_size": 1}))
    feats = segmenter.image_features([ImageInput("img", np.zeros((*ORIGINAL, 3), np.uint8))])[0]
    # FC-CLIP's own path on the unquantised logits: upsample to the padded input, crop, upsample, sigmoid
    exact = F.interpolate(mask_pred[None], size=PADDED, mode="bilinear", align_corners=False)[0]
    exact = F.interpolate(exact[None, :, :INPUT[0], :INPUT[1]], size=ORIGINAL, mode="bilinear", align_corners=False)[0]
    error = (feats.soft_masks.probabilities() - exact.sigmoid()).abs().max().item()
    print(f"max mask probability error ({mask_dtype}): {error:.2e}")
    # float16: within L / 8192 (mask_inference.store_mask_logits), L the largest |logit|
    assert 0 < error <= mask_pred.abs().max().item() / 8192 if mask_dtype == "float16" else error == 0
    probs = torch.cat([segmenter.base_probs(feats, vocab), segmenter.void_probs(feats, vocab)[:, None]], 1)
    mask_cls = fcclip_class_logits(class_logits, out_vocab[:, :-1], torch.tensor(overlap, dtype=torch.long), 0.4, 0.8)
    assert torch.equal(probs, mask_cls.softmax(-1))  # FC-CLIP's softmax(mask_cls), void last
    assert torch.allclose(feats.embeddings, F.normalize(embeddings, dim=-1))


def test_mask_logits_are_not_clipped():
    from benchmark.models.mask_inference import decode_mask_logits, store_mask_logits

    logits = np.array([[[300.0, -1e3], [1e6, -1e6]]], dtype=np.float32)  # v2 clipped at +-64
    assert decode_mask_logits(store_mask_logits(logits), 64.0).tolist() == [[[300.0, -1000.0], [65504.0, -65504.0]]]
    assert torch.equal(decode_mask_logits(store_mask_logits(logits, "float32"), 64.0), torch.from_numpy(logits))


def test_conversion_refuses_mismatched_shapes():
    class_logits, out_vocab, mask_pred, _ = fcclip_like_outputs()
    with pytest.raises(ValueError, match="class_logits must be"):
        fcclip_image_arrays(class_logits[:10], out_vocab, mask_pred, INPUT, PADDED)
    with pytest.raises(ValueError, match="out_vocab_logits must be"):
        fcclip_image_arrays(class_logits, out_vocab[:, :-1], mask_pred, INPUT, PADDED)
    with pytest.raises(ValueError, match="does not cover the padded input"):
        fcclip_image_arrays(class_logits, out_vocab, mask_pred, INPUT, (64, 100))
    with pytest.raises(ValueError, match="must lie within padded_size"):
        fcclip_image_arrays(class_logits, out_vocab, mask_pred, (70, 85), PADDED)


def test_class_names_compare_as_fcclip_splits_them():
    """FC-CLIP splits its class names at commas after removing the space behind them (fcclip.py l. 143-144):
    A-847's 'building, edifice' is the synonym set {building, edifice}, not a different name."""
    from benchmark.exporters.fcclip import synonym_sets_differ

    ours = [("building", "buildings", "edifice", "edifices"), ("wall", "walls"), ("sky",)]
    assert synonym_sets_differ(ours, ["building,buildings,edifice, edifices", "walls,wall", "sky"]) == []
    assert synonym_sets_differ(ours, ["building,buildings,edifice,edifices", "wall", "clouds"]) == [1, 2]


def test_missing_compiled_op_is_named():
    """FC-CLIP raises ModuleNotFoundError(its build instructions) without a module name for its op."""
    from benchmark.exporters.fcclip import import_error_message

    fcclip_error = ModuleNotFoundError("\n\nPlease compile MultiScaleDeformableAttention CUDA op with the following "
                                       "commands:\n\t`cd fcclip/modeling/pixel_decoder/ops`\n\t`sh make.sh`\n")
    message = import_error_message(fcclip_error)
    assert "MultiScaleDeformableAttention" in message and "sh make.sh" in message and "\n" not in message
    assert "None" not in import_error_message(ImportError("cannot import name 'x' from 'y'"))
    assert "(cannot import detectron2)" in import_error_message(ModuleNotFoundError(name="detectron2"))


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
            "64", "--embedding-dim", "8", "--images", "1", "--label-images", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # input 64x80 padded to 64x96; 4 queries x (16 x 24) float16 mask logits + 4 x 6 float32 class logits + 4 x 5
    # float32 out-of-vocabulary logits + two int32 pairs, exactly
    assert "masks 16x24" in out
    expected = 4 * 16 * 24 * 2 + 4 * 6 * 4 + 4 * 5 * 4 + 16
    assert out.splitlines()[2].split()[:5] == ["v3", "(float16", "mask", "logits)", str(expected)]
    # label changes against float32 logits: v2's clipping at +-64 changes labels at large scales, float16 not
    table = out.split("mask logit scale")[1].splitlines()[1:]
    rows = {int(line.split()[0]): [float(v) for v in line.split()[1:]] for line in table}
    assert rows[5120][0] > 0.01 > rows[5120][1]
    assert main([*args[:-2], "--image-size", "40by50"]) == 2
    assert "--image-size 40by50 is not HEIGHTxWIDTH" in capsys.readouterr().err


def test_capture_hooks_on_a_model_shaped_like_fcclip(monkeypatch):
    """FcclipCapture's hooks on a stand-in with FCCLIP's attributes and forward structure (fcclip.py l. 312-322,
    350-402: backbone, sem_seg_head, module-level get_classification_logits, the ensemble, semantic_inference
    per image): what it captures is what went in, and its bit-for-bit check of the ensemble passes."""
    import sys
    import types

    from torch import nn

    from benchmark.exporters.fcclip import FcclipCapture
    from fcclip_reference import fcclip_ensemble

    queries, classes, grid = 5, 4, (4, 6)
    generator = torch.Generator().manual_seed(1)
    # one image per batch, as the exporter and FC-CLIP's evaluation run it (torch's CPU pow rounds a tensor's
    # vectorised body and its tail differently, so a batch of two changes the last bits)
    pred_logits = torch.randn(1, queries, classes + 1, generator=generator) * 3
    pred_masks = torch.randn(1, queries, *grid, generator=generator) * 4
    pooled = torch.randn(1, queries, 8, generator=generator)
    out_vocab = torch.randn(1, queries, classes + 1, generator=generator) * 3
    module = types.ModuleType("fcclip.fcclip")
    module.get_classification_logits = lambda x, *args: out_vocab
    monkeypatch.setitem(sys.modules, "fcclip", types.ModuleType("fcclip"))
    monkeypatch.setitem(sys.modules, "fcclip.fcclip", module)

    class Backbone(nn.Module):
        def forward(self, x):
            return {"clip_vis_dense": torch.zeros(len(x), 8, 2, 3)}

    class Head(nn.Module):
        def forward(self, features):
            return {"pred_logits": pred_logits, "pred_masks": pred_masks}

    class StandIn(nn.Module):
        def __init__(self, on_valid_mask):
            super().__init__()
            self.backbone, self.sem_seg_head = Backbone(), Head()
            self.category_overlapping_mask = torch.tensor([1, 0, 1, 1])
            self.geometric_ensemble_alpha, self.geometric_ensemble_beta = 0.4, 0.8
            self.ensemble_on_valid_mask = on_valid_mask
            self.seen = []

        def forward(self, batched_inputs):
            images = torch.stack([x["image"] for x in batched_inputs])  # padded (H_pad, W_pad) = 4 x grid
            features = self.backbone(images)
            outputs = self.sem_seg_head(features)
            out_vocab_cls_results = sys.modules["fcclip.fcclip"].get_classification_logits(pooled, None, None, None)
            mask_cls_results = fcclip_ensemble(outputs["pred_logits"], out_vocab_cls_results, outputs["pred_masks"],
                                               features["clip_vis_dense"].shape, self.category_overlapping_mask,
                                               0.4, 0.8, self.ensemble_on_valid_mask)
            for mask_cls_result, mask_pred_result in zip(mask_cls_results, outputs["pred_masks"]):
                self.semantic_inference(mask_cls_result, mask_pred_result)

        def semantic_inference(self, mask_cls, mask_pred):
            self.seen.append(mask_cls)

    for on_valid_mask in (False, True):
        model = StandIn(on_valid_mask)
        capture = FcclipCapture(model)
        inputs = [{"image": torch.zeros(3, 4 * grid[0], 4 * grid[1])}]
        arrays = capture(inputs)
        assert capture.mismatches == 0 and len(model.seen) == 1
        for i, image in enumerate(arrays):
            assert torch.equal(torch.from_numpy(image["class_logits"]), pred_logits[i])
            assert torch.equal(torch.from_numpy(image["out_vocab_logits"]), out_vocab[i, :, :-1])
            assert torch.equal(torch.from_numpy(image["embeddings"]), pooled[i])
            assert image["padded_size"].tolist() == [16, 24] and image["mask_logits"].shape == (queries, *grid)
            assert ("valid_masks" in image) == on_valid_mask
        model.geometric_ensemble_alpha = 0.5  # what the capture reads no longer what the forward ran: noticed
        capture(inputs)
        assert capture.mismatches == 1
