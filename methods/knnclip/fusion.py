"""Retrieval votes, confidence and fusion of kNN-CLIP (our reading of Gui et al.; every constant is a key).

For a query (a mask proposal's embedding) with neighbours n = 1..k, similarities s_n and labels y_n:
    w_n = exp(s_n / tau)                (vote="similarity")   or   w_n = 1   (vote="uniform")
    P_ret(c) = sum_{n: y_n = c} w_n / sum_n w_n          over neighbours whose class is in the vocabulary
    confidence = max_c P_ret(c)         (confidence="max_prob")  or  mean_n s_n   (confidence="mean_sim")
    P_final = lambda * P_ret + (1 - lambda) * P_base   if confidence >= T,   else P_base
Queries with no usable neighbour keep P_base.
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


def fuse(p_base: torch.Tensor, p_ret: torch.Tensor, confidence: torch.Tensor, threshold: float,
         weight: float) -> torch.Tensor:
    """P_final = weight * P_ret + (1 - weight) * P_base where confidence >= threshold, else P_base."""
    fused = weight * p_ret + (1 - weight) * p_base
    use = (confidence >= threshold) & (p_ret.sum(dim=1) > 0)
    return torch.where(use[:, None], fused, p_base)
