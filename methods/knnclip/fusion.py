"""Retrieval votes, confidence and fusion of kNN-CLIP (our reading of Gui et al.; every constant is a key).

For a query (a mask proposal's embedding) with neighbours n = 1..k, similarities s_n and labels y_n:
    w_n = exp(s_n / tau)                (vote="similarity")   or   w_n = 1   (vote="uniform")
    P_ret(c) = sum_{n: y_n = c} w_n / sum_n w_n          over neighbours whose class is in the vocabulary
    confidence = max_c P_ret(c)         (confidence="max_prob")  or  mean_n s_n   (confidence="mean_sim")
    P_final = lambda * P_ret + (1 - lambda) * P_base   if confidence >= T,   else P_base
Queries with no usable neighbour keep P_base.

Void. A base model with a "no object" class (FC-CLIP, any MaskFormer) gives P_base over the classes that
sums to 1 - p_void, while P_ret sums to 1; the paper does not say how the two meet. `method.void` chooses,
for the fused queries only (the others keep P_base and p_void untouched):
    keep         P_final = lambda * (1 - p_void) * P_ret + (1 - lambda) * P_base,   void stays p_void
                 (the non-void mass alone is fused: retrieval re-distributes what the base model gave to
                 real classes, and leaves its "this mask is nothing" judgement alone)
    renormalise  P_final = lambda * P_ret + (1 - lambda) * P_base / (1 - p_void),   void becomes 0
                 (void kept out of the fusion, P_base renormalised over the classes)
    drop         P_final = lambda * P_ret + (1 - lambda) * P_base,   void becomes 0
                 (the formula taken literally with P_base as the model gives it; sums to 1 - (1-lambda) p_void)
Default: keep. FC-CLIP's panoptic inference removes void queries and keeps those above an object threshold
that was tuned with the void mass in the softmax; only `keep` leaves that decision to the base model. With
`drop` a query FC-CLIP judged void (p_void 0.5, best class 0.4) fuses to 0.7 + 0.3 * 0.4 = 0.82 > 0.8 and
enters the panoptic output FC-CLIP had kept it out of; `renormalise` lifts it to 0.94. Semantic inference
weighs each mask by its non-void mass, which `keep` also preserves. Without a void class (p_void = 0) the
three coincide with the formula above.
"""
from __future__ import annotations

import torch


def retrieval_probs(similarities: torch.Tensor, neighbour_labels: torch.Tensor, class_ids: list[int],
                    tau: float, vote: str = "similarity") -> torch.Tensor:
    """(M, C) P_ret over `class_ids` from (M, k) neighbour similarities and dataset class labels (-1 = none)."""
    num_queries, _ = similarities.shape
    lookup = torch.full((int(max(class_ids, default=0)) + 2,), -1, dtype=torch.long)
    lookup[torch.as_tensor(class_ids, dtype=torch.long)] = torch.arange(len(class_ids))
    labels = neighbour_labels.long()
    column = torch.where((labels >= 0) & (labels < lookup.numel() - 1), lookup[labels.clamp(0, lookup.numel() - 2)], -1)
    valid = column >= 0
    if vote == "similarity":
        # subtract the row max before exp: the weights' ratios, hence P_ret, are unchanged
        shifted = torch.where(valid, similarities, torch.full_like(similarities, -torch.inf))
        row_max = shifted.max(dim=1, keepdim=True).values.clamp(min=-1e30)
        weights = torch.where(valid, torch.exp((similarities - row_max) / tau), torch.zeros_like(similarities))
    elif vote == "uniform":
        weights = valid.to(similarities.dtype)
    else:
        raise ValueError(f"vote='{vote}' is not one of: similarity, uniform")
    votes = torch.zeros(num_queries, len(class_ids), dtype=similarities.dtype)
    votes.scatter_add_(1, column.clamp(min=0), weights)
    total = votes.sum(dim=1, keepdim=True)
    return torch.where(total > 0, votes / total.clamp(min=1e-30), torch.zeros_like(votes))


def retrieval_confidence(p_ret: torch.Tensor, similarities: torch.Tensor, neighbour_labels: torch.Tensor,
                         mode: str = "max_prob") -> torch.Tensor:
    """(M,) confidence of each query's retrieval; 0 for queries without usable neighbours."""
    has_votes = p_ret.sum(dim=1) > 0
    if mode == "max_prob":
        conf = p_ret.max(dim=1).values
    elif mode == "mean_sim":
        valid = neighbour_labels >= 0
        conf = (similarities * valid).sum(1) / valid.sum(1).clamp(min=1)
    else:
        raise ValueError(f"confidence='{mode}' is not one of: max_prob, mean_sim")
    return torch.where(has_votes, conf, torch.zeros_like(conf))


VOID_MODES = ("keep", "renormalise", "drop")


def fuse(p_base: torch.Tensor, p_ret: torch.Tensor, confidence: torch.Tensor, threshold: float, weight: float,
         void_probs: torch.Tensor, void: str = "keep") -> tuple[torch.Tensor, torch.Tensor]:
    """((M, C) P_final, (M,) void probabilities): the fusion of the module doc where confidence >= threshold
    (and the query has neighbours), P_base and void_probs elsewhere."""
    use = (confidence >= threshold) & (p_ret.sum(dim=1) > 0)
    non_void = (1 - void_probs)[:, None]  # (M, 1)
    if void == "keep":
        fused, fused_void = weight * non_void * p_ret + (1 - weight) * p_base, void_probs
    elif void == "renormalise":
        fused, fused_void = weight * p_ret + (1 - weight) * p_base / non_void.clamp(min=1e-12), torch.zeros_like(void_probs)
    elif void == "drop":
        fused, fused_void = weight * p_ret + (1 - weight) * p_base, torch.zeros_like(void_probs)
    else:
        raise ValueError(f"void='{void}' is not one of: {', '.join(VOID_MODES)}")
    return torch.where(use[:, None], fused, p_base), torch.where(use, fused_void, void_probs)
