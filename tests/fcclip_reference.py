"""FC-CLIP's inference, transcribed as close to the source as possible (`self.` attributes become arguments), for
the tests that compare model=cached against it:
bytedance/fc-clip fcclip/fcclip.py @7791b83: FCCLIP.forward, inference branch (the ensemble, l. 350-402;
"upsample masks" and the per-image loop with sem_seg_postprocess_before_inference=True, as with PANOPTIC_ON),
semantic_inference, panoptic_inference; detectron2 detectron2/modeling/postprocessing.py: sem_seg_postprocess."""
import torch
import torch.nn.functional as F


def fcclip_ensemble(mask_cls_results, out_vocab_cls_results, mask_pred_results, clip_feature_shape,
                    category_overlapping_mask, geometric_ensemble_alpha, geometric_ensemble_beta,
                    ensemble_on_valid_mask):
    """fcclip.py l. 350-402 with the batch dimension: mask_cls_results = outputs["pred_logits"] (B, Q, K + 1),
    out_vocab_cls_results = get_classification_logits(...) (B, Q, K + 1), mask_pred_results (B, Q, h, w)."""
    mask_for_pooling = F.interpolate(mask_pred_results, size=clip_feature_shape[-2:],
                                     mode='bilinear', align_corners=False)
    in_vocab_cls_results = mask_cls_results[..., :-1]  # remove void
    out_vocab_cls_results = out_vocab_cls_results[..., :-1]  # remove void
    out_vocab_cls_probs = out_vocab_cls_results.softmax(-1)
    in_vocab_cls_results = in_vocab_cls_results.softmax(-1)
    category_overlapping_mask = category_overlapping_mask
    if ensemble_on_valid_mask:
        valid_masking = (mask_for_pooling > 0).to(mask_for_pooling).sum(-1).sum(-1) > 0
        valid_masking = valid_masking.to(in_vocab_cls_results.dtype).unsqueeze(-1)
        alpha = torch.ones_like(in_vocab_cls_results) * geometric_ensemble_alpha
        beta = torch.ones_like(in_vocab_cls_results) * geometric_ensemble_beta
        alpha = alpha * valid_masking
        beta = beta * valid_masking
    else:
        alpha = geometric_ensemble_alpha
        beta = geometric_ensemble_beta
    cls_logits_seen = (
        (in_vocab_cls_results ** (1 - alpha) * out_vocab_cls_probs**alpha).log()
        * category_overlapping_mask
    )
    cls_logits_unseen = (
        (in_vocab_cls_results ** (1 - beta) * out_vocab_cls_probs**beta).log()
        * (1 - category_overlapping_mask)
    )
    cls_results = cls_logits_seen + cls_logits_unseen
    is_void_prob = F.softmax(mask_cls_results, dim=-1)[..., -1:]
    mask_cls_probs = torch.cat([
        cls_results.softmax(-1) * (1.0 - is_void_prob),
        is_void_prob], dim=-1)
    mask_cls_results = torch.log(mask_cls_probs + 1e-8)
    return mask_cls_results


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
