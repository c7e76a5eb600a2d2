"""model=cached on soft masks (predictions format v3) against a direct transcription of FC-CLIP's inference,
its geometric ensemble included: over the whole vocabulary and over subsets (FC-CLIP run with fewer classes)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from benchmark.data.types import ClassInfo, ImageInput, Vocabulary
from benchmark.models.cached.format import image_arrays, write_image_predictions, write_meta
from benchmark.models.cached.segmenter import CachedSegmenter
from benchmark.models.mask_inference import outputs_from_masks, semantic_scores
from fcclip_reference import (fcclip_ensemble, fcclip_upsample, panoptic_inference, sem_seg_postprocess,
                              semantic_inference)

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
    """A v3 folder (no ensemble) with one image whose masks are soft blobs (else rough random fields) on FC-CLIP's output grid."""
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
    from benchmark.models.cached.reading import read_image_predictions

    segmenter, logprobs = soft_predictions
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]

    stored = read_image_predictions(segmenter.directory, "img")
    mask_pred = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    mask_cls = torch.from_numpy(stored["class_logits"])
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
    from benchmark.models.cached.reading import read_image_predictions
    from benchmark.models.mask_inference import decode_mask_logits

    segmenter, _ = write_soft_predictions(tmp_path, semantic_at_input=True, blobs=False)
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    stored = read_image_predictions(tmp_path, "img")
    mask_pred = F.interpolate(decode_mask_logits(stored["mask_logits"], 64.0)[None], size=PADDED, mode="bilinear",
                              align_corners=False)[0]
    reference = sem_seg_postprocess(semantic_inference(torch.from_numpy(stored["class_logits"]), mask_pred),
                                    INPUT, HEIGHT, WIDTH)
    assert np.array_equal(out.sem_seg, reference.argmax(0).numpy())
    masks_first = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    other_order = semantic_inference(torch.from_numpy(stored["class_logits"]), masks_first).argmax(0).numpy()
    assert not np.array_equal(out.sem_seg, other_order)  # the order matters on this fixture
    # classes a chunk at a time (here one class per chunk) keep the map
    monkeypatch.setattr(mask_inference, "SEMANTIC_CHUNK_ELEMENTS", 1)
    assert np.array_equal(ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0].sem_seg,
                          out.sem_seg)


def test_panoptic_uses_the_producers_thresholds(tmp_path):
    """FC-CLIP's ADE20K eval config sets OBJECT_MASK_THRESHOLD 0.0 (and its COCO one inherits it): recorded in
    meta.json, applied by zero-shot."""
    from baselines.zeroshot import ZeroShot
    from benchmark.models.cached.reading import read_image_predictions
    from benchmark.models.mask_inference import decode_mask_logits

    segmenter, _ = write_soft_predictions(tmp_path, object_threshold=0.0)
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    out = ZeroShot(ZeroShot.Config(), segmenter, num_classes=3).predict([image], VOCAB)[0]
    stored = read_image_predictions(tmp_path, "img")
    mask_pred = fcclip_upsample(decode_mask_logits(stored["mask_logits"], 64.0)[None], PADDED, INPUT, HEIGHT, WIDTH)
    reference_pan, reference_info = panoptic_inference(torch.from_numpy(stored["class_logits"]), mask_pred, 3, {2},
                                                       0.0, 0.8)
    assert np.array_equal(out.pan_seg, reference_pan.numpy())
    assert [s.category_id for s in out.segments] == [s["category_id"] for s in reference_info]
    strict_pan, _ = panoptic_inference(torch.from_numpy(stored["class_logits"]), mask_pred, 3, {2}, 0.8, 0.8)
    assert not torch.equal(reference_pan, strict_pan)  # the queries below 0.8 now take pixels


# ---------------------------------------------------------------------------------------------------------------
# FC-CLIP's ensemble over subsets of the vocabulary. Each class's in- and out-of-vocabulary logits do not depend on
# the other classes (a text classifier row each), so FC-CLIP run with a class list S gives the columns of S (and
# void) of the full run's pre-ensemble logits; the ensemble and the void step then run over S alone.

NAMES = ("wall", "floor", "person", "car", "tree", "sky")
ENSEMBLE_VOCAB = Vocabulary("toy6", tuple(ClassInfo(i, name, (name,), name in ("person", "car"))
                                          for i, name in enumerate(NAMES)))
OVERLAP = [1, 0, 1, 0, 1, 1]  # FC-CLIP's category_overlapping_mask: shares a name with a training class
CLIP_GRID = (3, 3)  # clip_vis_dense's grid (ENSEMBLE_ON_VALID_MASK pools masks there)
SUBSETS = [[0, 2], [1, 3, 4], [5, 0, 3]]  # class ids of S_t (the last in another order than the columns)


def vocab_of(class_ids) -> Vocabulary:
    """The classes in the order given (FC-CLIP's class list for the run)."""
    return Vocabulary("toy6", tuple(ENSEMBLE_VOCAB.classes[c] for c in class_ids))


def ensemble_outputs(seed: int = 17, queries: int = 12):
    """FC-CLIP-shaped raw outputs with a batch of one: pred_logits (1, Q, K + 1), out-of-vocabulary logits
    (1, Q, K + 1), pred_masks (1, Q, h, w); two queries' masks are negative everywhere (invalid)."""
    generator = torch.Generator().manual_seed(seed)
    classes = len(NAMES)
    pred_logits = torch.randn(1, queries, classes + 1, generator=generator) * 4
    out_vocab = torch.randn(1, queries, classes + 1, generator=generator) * 4
    rows, cols = torch.meshgrid(torch.arange(GRID[0]), torch.arange(GRID[1]), indexing="ij")
    centres = torch.rand(queries, 2, generator=generator) * torch.tensor(GRID)
    distance = torch.hypot(rows[None] - centres[:, 0, None, None], cols[None] - centres[:, 1, None, None])
    pred_masks = (4.0 - 2.0 * distance + torch.randn(queries, *GRID, generator=generator))[None]
    pred_masks[0, -2:] = -5.0  # no positive logit: FC-CLIP's valid masking leaves these out of the ensemble
    return pred_logits, out_vocab, pred_masks


def write_ensemble_predictions(folder, on_valid_mask: bool = False, semantic_at_input: bool = False):
    from benchmark.models.cached.format import ensemble_settings

    pred_logits, out_vocab, pred_masks = ensemble_outputs()
    valid = None
    if on_valid_mask:  # what the exporter records (FcclipCapture.valid_masks)
        mask_for_pooling = F.interpolate(pred_masks, size=CLIP_GRID, mode="bilinear", align_corners=False)
        valid = ((mask_for_pooling > 0).to(mask_for_pooling).sum(-1).sum(-1) > 0)[0]
    write_meta(folder, "toy6", ENSEMBLE_VOCAB.ids, void=True, producer="test", semantic_at_input=semantic_at_input,
               object_threshold=0.0, ensemble=ensemble_settings(0.4, 0.8, on_valid_mask, OVERLAP))
    write_image_predictions(folder, "img", image_arrays(pred_masks[0], pred_logits[0], INPUT, PADDED,
                                                        out_vocab_logits=out_vocab[0, :, :-1], valid_masks=valid,
                                                        mask_dtype="float32"))
    return CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(folder), "batch_size": 2}))


def fcclip_run_with(class_ids, on_valid_mask: bool = False, semantic_at_input: bool = False):
    """FC-CLIP's outputs when run with `class_ids`' names: the transcribed forward on the columns of those
    classes (and void), then its semantic (argmax) and panoptic inference."""
    pred_logits, out_vocab, pred_masks = ensemble_outputs()
    columns = list(class_ids) + [len(NAMES)]
    mask_cls = fcclip_ensemble(pred_logits[..., columns], out_vocab[..., columns], pred_masks, CLIP_GRID,
                               torch.tensor(OVERLAP, dtype=torch.long)[list(class_ids)], 0.4, 0.8, on_valid_mask)[0]
    if semantic_at_input:
        mask_pred = F.interpolate(pred_masks, size=PADDED, mode="bilinear", align_corners=False)[0]
        semantic = sem_seg_postprocess(semantic_inference(mask_cls, mask_pred), INPUT, HEIGHT, WIDTH)
    else:
        mask_pred = fcclip_upsample(pred_masks, PADDED, INPUT, HEIGHT, WIDTH)
        semantic = semantic_inference(mask_cls, mask_pred)
    mask_pred = fcclip_upsample(pred_masks, PADDED, INPUT, HEIGHT, WIDTH)
    things = {i for i, c in enumerate(class_ids) if ENSEMBLE_VOCAB.classes[c].isthing}
    panoptic, info = panoptic_inference(mask_cls, mask_pred, len(class_ids), things, 0.0, 0.8)
    labels = np.asarray(class_ids)[semantic.argmax(0).numpy()]
    return mask_cls, labels, panoptic, [(s["id"], int(class_ids[s["category_id"]])) for s in info]


def zeroshot(segmenter, vocab):
    from baselines.zeroshot import ZeroShot

    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    return ZeroShot(ZeroShot.Config(), segmenter, num_classes=len(NAMES)).predict([image], vocab)[0]


def v2_recipe(mask_cls_full, class_ids):
    """What format v2 gave for a subset: softmax over the subset's columns and void of the scores FC-CLIP's
    ensemble produced over the whole vocabulary."""
    return mask_cls_full[:, list(class_ids) + [len(NAMES)]].softmax(-1)


@pytest.mark.parametrize("class_ids", SUBSETS)
@pytest.mark.parametrize("on_valid_mask", [False, True])
def test_subset_vocabulary_zeroshot_is_fcclip_run_with_those_classes(tmp_path, class_ids, on_valid_mask):
    segmenter = write_ensemble_predictions(tmp_path, on_valid_mask)
    vocab = vocab_of(class_ids)
    mask_cls, labels, panoptic, segments = fcclip_run_with(class_ids, on_valid_mask)
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    feats = segmenter.image_features([image])[0]
    probs, void = segmenter.probs_with_void(feats.logits, vocab, segmenter.valid_masks(feats))
    assert torch.equal(torch.cat([probs, void[:, None]], 1), F.softmax(mask_cls, dim=-1))  # bit for bit
    out = zeroshot(segmenter, vocab)
    assert np.array_equal(out.sem_seg, labels)
    assert np.array_equal(out.pan_seg, panoptic.numpy())
    assert [(s.id, s.category_id) for s in out.segments] == segments
    assert len(set(labels.ravel())) > 1 and len(segments) > 1  # the fixture exercises several classes
    # format v2's recipe (the full run's final scores, restricted) is not FC-CLIP run with these classes
    full = fcclip_run_with(list(range(len(NAMES))), on_valid_mask)[0]
    assert not torch.allclose(v2_recipe(full, class_ids), F.softmax(mask_cls, dim=-1), atol=1e-3)


def test_subset_vocabulary_fails_with_a_v2_export(tmp_path):
    """The same subset from a v2 folder (FC-CLIP's final scores over the whole vocabulary, what the v2 exporter
    wrote) gives another semantic map: the reason for format v3. Reading v2 warns."""
    from benchmark.io import atomic_save_npz, atomic_write_json
    from benchmark.models.mask_inference import encode_mask_logits

    class_ids = SUBSETS[1]
    full, *_ = fcclip_run_with(list(range(len(NAMES))))
    pred_masks = ensemble_outputs()[2]
    atomic_write_json(tmp_path / "meta.json", {"format": "covseg-predictions", "version": 2, "vocabulary": "toy6",
                                               "class_ids": ENSEMBLE_VOCAB.ids, "void": True, "object_threshold": 0.0})
    atomic_save_npz(tmp_path / "img.npz", mask_logits=encode_mask_logits(pred_masks[0].numpy(), 64.0),
                    input_size=np.array(INPUT), padded_size=np.array(PADDED), class_logprobs=full.numpy())
    with pytest.warns(UserWarning, match="exact only with eval.vocabulary=all"):
        segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(tmp_path),
                                                      "batch_size": 2}))
    _, labels, _, _ = fcclip_run_with(class_ids)
    assert np.array_equal(zeroshot(segmenter, ENSEMBLE_VOCAB).sem_seg, fcclip_run_with(list(range(6)))[1])
    assert not np.array_equal(zeroshot(segmenter, vocab_of(class_ids)).sem_seg, labels)


def test_subset_vocabulary_semantic_at_input(tmp_path):
    """FC-CLIP's A-847 order (semantic scores on the padded input, then resized) with a subset."""
    segmenter = write_ensemble_predictions(tmp_path, semantic_at_input=True)
    class_ids = SUBSETS[2]
    _, labels, _, _ = fcclip_run_with(class_ids, semantic_at_input=True)
    assert np.array_equal(zeroshot(segmenter, vocab_of(class_ids)).sem_seg, labels)


def test_full_vocabulary_ensemble_is_fcclip_bit_for_bit(tmp_path):
    """The whole vocabulary: `fcclip_class_logits` equals the transcription, valid masking included."""
    from benchmark.models.mask_inference import fcclip_class_logits

    pred_logits, out_vocab, pred_masks = ensemble_outputs()
    overlap = torch.tensor(OVERLAP, dtype=torch.long)
    for on_valid_mask in (False, True):
        reference = fcclip_ensemble(pred_logits, out_vocab, pred_masks, CLIP_GRID, overlap, 0.4, 0.8, on_valid_mask)[0]
        mask_for_pooling = F.interpolate(pred_masks, size=CLIP_GRID, mode="bilinear", align_corners=False)
        valid = ((mask_for_pooling > 0).sum(-1).sum(-1) > 0)[0] if on_valid_mask else None
        assert torch.equal(fcclip_class_logits(pred_logits[0], out_vocab[0, :, :-1], overlap, 0.4, 0.8, valid),
                           reference)
    # valid masking matters on this fixture: it changes the two invalid queries' scores, the others' only in
    # their last bits (a tensor exponent rounds otherwise than a float one: why both branches are transcribed)
    with_mask, without = (fcclip_ensemble(pred_logits, out_vocab, pred_masks, CLIP_GRID, overlap, 0.4, 0.8, on)[0]
                          for on in (True, False))
    assert not torch.allclose(with_mask[-2:], without[-2:], atol=0.1)
    assert torch.allclose(with_mask[:-2], without[:-2], atol=1e-5) and not torch.equal(with_mask[:-2], without[:-2])


def test_untrained_score_head_is_zeroshot_on_a_subset_with_ensemble(tmp_path):
    """The learning baselines' head reads the score rows (class logits, then out-of-vocabulary logits) through
    FC-CLIP's ensemble over S_t: before training it is zero-shot, on a subset too."""
    from baselines.finetune import Finetune

    segmenter = write_ensemble_predictions(tmp_path)
    vocab = vocab_of(SUBSETS[1])
    image = ImageInput("img", np.zeros((HEIGHT, WIDTH, 3), np.uint8), panoptic=True)
    learner = Finetune(Finetune.Config(), segmenter, num_classes=len(NAMES)).predict([image], vocab)[0]
    zero = zeroshot(segmenter, vocab)
    assert np.array_equal(learner.sem_seg, zero.sem_seg) and np.array_equal(learner.pan_seg, zero.pan_seg)
    assert learner.segments == zero.segments and learner.scores == zero.scores
