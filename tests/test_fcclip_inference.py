"""model=cached on soft masks (predictions format v2) against a direct transcription of FC-CLIP's inference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmark.data.types import ClassInfo, ImageInput, Vocabulary
from benchmark.models.cached import CachedSegmenter, image_arrays, write_image_predictions, write_meta
from benchmark.models.mask_inference import outputs_from_masks, semantic_scores

# ---------------------------------------------------------------------------------------------------------------
# Transcription, kept as close to the source as possible (`self.` attributes become arguments):
# bytedance/fc-clip fcclip/fcclip.py @7791b83: FCCLIP.forward, inference branch ("upsample masks" and the
# per-image loop with sem_seg_postprocess_before_inference=True, as with PANOPTIC_ON), semantic_inference,
# panoptic_inference; detectron2 detectron2/modeling/postprocessing.py: sem_seg_postprocess.


def sem_seg_postprocess(result, img_size, output_height, output_width):
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    result = F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]
    return result


def fcclip_upsample(mask_pred_results, padded_size, image_size, height, width):
    mask_pred_results = F.interpolate(mask_pred_results, size=padded_size, mode="bilinear", align_corners=False)
    return sem_seg_postprocess(mask_pred_results[0], image_size, height, width)


def semantic_inference(mask_cls, mask_pred):
    mask_cls = F.softmax(mask_cls, dim=-1)[..., :-1]
    mask_pred = mask_pred.sigmoid()
    semseg = torch.einsum("qc,qhw->chw", mask_cls, mask_pred)
    return semseg


def panoptic_inference(mask_cls, mask_pred, num_classes, thing_ids, object_mask_threshold, overlap_threshold):
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    mask_pred = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    cur_masks = mask_pred[keep]
    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks
    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.zeros((h, w), dtype=torch.int32)
    segments_info = []
    current_segment_id = 0
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info
    cur_mask_ids = cur_prob_masks.argmax(0)
    stuff_memory_list = {}
    for k in range(cur_classes.shape[0]):
        pred_class = cur_classes[k].item()
        isthing = pred_class in thing_ids
        mask_area = (cur_mask_ids == k).sum().item()
        original_area = (cur_masks[k] >= 0.5).sum().item()
        mask = (cur_mask_ids == k) & (cur_masks[k] >= 0.5)
        if mask_area > 0 and original_area > 0 and mask.sum().item() > 0:
            if mask_area / original_area < overlap_threshold:
                continue
            if not isthing:
                if int(pred_class) in stuff_memory_list.keys():
                    panoptic_seg[mask] = stuff_memory_list[int(pred_class)]
                    continue
                else:
                    stuff_memory_list[int(pred_class)] = current_segment_id + 1
            current_segment_id += 1
            panoptic_seg[mask] = current_segment_id
            segments_info.append({"id": current_segment_id, "isthing": bool(isthing), "category_id": int(pred_class)})
    return panoptic_seg, segments_info

# ---------------------------------------------------------------------------------------------------------------


VOCAB = Vocabulary("toy", (ClassInfo(0, "wall", ("wall",), False), ClassInfo(1, "floor", ("floor",), False),
                           ClassInfo(2, "person", ("person",), True)))
HEIGHT, WIDTH = 27, 33  # original image
INPUT, PADDED, GRID = (18, 22), (20, 24), (5, 6)  # resized input, padded input, output grid (1/4 of padded)
# one row per query: probabilities of wall, floor, person, void
CLASS_PROBS = [[0.90, 0.04, 0.03, 0.03],   # stuff, kept
               [0.86, 0.06, 0.04, 0.04],   # stuff of the same class: merges into the first one's segment
               [0.01, 0.02, 0.95, 0.02],   # thing, kept
               [0.02, 0.03, 0.93, 0.02],   # another instance
               [0.02, 0.40, 0.08, 0.50],   # void wins: removed before panoptic merging
               [0.10, 0.60, 0.20, 0.10],   # below the object threshold
               [0.03, 0.88, 0.05, 0.04],   # stuff, kept
               [0.30, 0.30, 0.30, 0.10]]


def write_soft_predictions(folder, semantic_at_input: bool = False, blobs: bool = True, object_threshold: float = 0.8):
    """A v2 folder with one image whose masks are soft blobs (else rough random fields) on FC-CLIP's output grid."""
    rng = np.random.default_rng(3)
    centres = [(0, 0), (0, 5), (4, 0), (4, 3), (2, 2), (2, 4), (4, 5), (1, 3)]  # one blob per query
    rows, cols = np.mgrid[:GRID[0], :GRID[1]]
    mask_logits = np.stack([3.0 - 2.5 * np.hypot(rows - r, cols - c) for r, c in centres])
    mask_logits += rng.normal(scale=0.5 if blobs else 8.0, size=mask_logits.shape)
    logprobs = torch.log(torch.tensor(CLASS_PROBS) + 1e-8)  # as FC-CLIP's final mask_cls_results
    write_meta(folder, "toy", VOCAB.ids, void=True, producer="test", semantic_at_input=semantic_at_input,
               object_threshold=object_threshold)
    write_image_predictions(folder, "img", image_arrays(mask_logits, logprobs, INPUT, PADDED))
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(folder), "batch_size": 2}))
    return segmenter, logprobs


@pytest.fixture
def soft_predictions(tmp_path):
    return write_soft_predictions(tmp_path)


def test_zeroshot_on_soft_masks_is_fcclip_inference_bit_for_bit(soft_predictions):
    from baselines.zeroshot import ZeroShot
    from benchmark.models.mask_inference import decode_mask_logits
    from benchmark.models.cached import read_image_predictions

    segmenter, logprobs = soft_predictions
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]

    stored = read_image_predictions(segmenter.directory, "img")
    mask_pred = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    mask_cls = torch.from_numpy(stored["class_logprobs"])
    reference_scores = semantic_inference(mask_cls, mask_pred)
    feats = segmenter.image_features([image])[0]
    assert torch.equal(semantic_scores(feats.soft_masks.probabilities(), segmenter.base_probs(feats, VOCAB)),
                       reference_scores)
    assert np.array_equal(out.sem_seg, reference_scores.argmax(0).numpy())
    reference_pan, reference_info = panoptic_inference(mask_cls, mask_pred, 3, {2}, 0.8, 0.8)
    assert np.array_equal(out.pan_seg, reference_pan.numpy())
    assert [{"id": s.id, "isthing": s.isthing, "category_id": s.category_id} for s in out.segments] == reference_info
    assert [s.area for s in out.segments] == [int((out.pan_seg == s.id).sum()) for s in out.segments]
    # the fixture exercises what matters: two wall queries merged into one segment, two person instances
    assert [s["category_id"] for s in reference_info] == [0, 2, 2, 1]
    assert out.pan_seg[0, 0] == out.pan_seg[0, -1] == 1

    # binary masks (format v1's sigmoid > 0.5) change the semantic map: the reason format v2 exists
    binary = outputs_from_masks(feats.soft_masks.binary(), segmenter.base_probs(feats, VOCAB), VOCAB, panoptic=False)
    assert not np.array_equal(binary.sem_seg, out.sem_seg)


def test_semantic_bands_keep_the_argmax(soft_predictions, monkeypatch):
    """Semantic scores computed a band of rows at a time (bounded memory) give the one-shot map."""
    from benchmark.models import mask_inference

    segmenter, _ = soft_predictions
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    feats = segmenter.image_features([image])[0]
    probs, ids = segmenter.base_probs(feats, VOCAB), np.asarray(VOCAB.ids)
    whole = mask_inference.semantic_from_soft_masks(feats.soft_masks.probabilities(), probs, ids)
    monkeypatch.setattr(mask_inference, "SEMANTIC_CHUNK_ELEMENTS", 3 * WIDTH * 4)  # bands of 4 rows
    assert np.array_equal(mask_inference.semantic_from_soft_masks(feats.soft_masks.probabilities(), probs, ids), whole)


@pytest.mark.parametrize("method", ["finetune", "joint", "ewc"])
def test_untrained_score_head_is_zeroshot(soft_predictions, method):
    """Before training, the learning baselines' head on model=cached (zero-initialised residual on the class
    scores) predicts exactly what zero-shot does, void and soft masks included."""
    import importlib

    from baselines.zeroshot import ZeroShot
    from benchmark.method import METHODS

    importlib.import_module({"ewc": "baselines.regularized"}.get(method, f"baselines.{method}"))  # registers it
    segmenter, _ = soft_predictions
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    baseline = METHODS.get(method)
    learner = baseline(baseline.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    zero = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    assert np.array_equal(learner.sem_seg, zero.sem_seg) and np.array_equal(learner.pan_seg, zero.pan_seg)
    assert learner.segments == zero.segments and learner.scores == zero.scores


def test_semantic_at_input_is_fcclip_a847_order_bit_for_bit(tmp_path, monkeypatch):
    """FC-CLIP's A-847 / PC-459 configs (PANOPTIC_ON and INSTANCE_ON off): semantic_inference on the padded
    input, then sem_seg_postprocess of the class scores."""
    from baselines.zeroshot import ZeroShot
    from benchmark.models import mask_inference
    from benchmark.models.cached import read_image_predictions
    from benchmark.models.mask_inference import decode_mask_logits

    segmenter, _ = write_soft_predictions(tmp_path, semantic_at_input=True, blobs=False)
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    stored = read_image_predictions(tmp_path, "img")
    mask_pred = F.interpolate(decode_mask_logits(stored["mask_logits"], 64.0)[None], size=PADDED, mode="bilinear",
                              align_corners=False)[0]
    reference = sem_seg_postprocess(semantic_inference(torch.from_numpy(stored["class_logprobs"]), mask_pred),
                                    INPUT, HEIGHT, WIDTH)
    assert np.array_equal(out.sem_seg, reference.argmax(0).numpy())
    masks_first = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    other_order = semantic_inference(torch.from_numpy(stored["class_logprobs"]), masks_first).argmax(0).numpy()
    assert not np.array_equal(out.sem_seg, other_order)  # the order matters on this fixture
    # classes a chunk at a time (here one class per chunk) keep the map
    monkeypatch.setattr(mask_inference, "SEMANTIC_CHUNK_ELEMENTS", 1)
    assert np.array_equal(ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0].sem_seg,
                          out.sem_seg)


def test_panoptic_uses_the_producers_thresholds(tmp_path):
    """FC-CLIP's ADE20K config sets OBJECT_MASK_THRESHOLD 0.0: recorded in meta.json, applied by zero-shot."""
    from baselines.zeroshot import ZeroShot
    from benchmark.models.cached import read_image_predictions
    from benchmark.models.mask_inference import decode_mask_logits

    segmenter, _ = write_soft_predictions(tmp_path, object_threshold=0.0)
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    stored = read_image_predictions(tmp_path, "img")
    mask_pred = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    reference_pan, reference_info = panoptic_inference(torch.from_numpy(stored["class_logprobs"]), mask_pred, 3, {2},
                                                       0.0, 0.8)
    assert np.array_equal(out.pan_seg, reference_pan.numpy())
    assert [s.category_id for s in out.segments] == [s["category_id"] for s in reference_info]
    strict_pan, _ = panoptic_inference(torch.from_numpy(stored["class_logprobs"]), mask_pred, 3, {2}, 0.8, 0.8)
    assert not torch.equal(reference_pan, strict_pan)  # the queries below 0.8 now take pixels
