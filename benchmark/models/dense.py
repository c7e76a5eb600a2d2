"""Dense CLIP features and mask pooling: MaskCLIP's value path through open_clip's last ViT block, and the
area-weighted pooling of dense features under proposals (a partition or overlapping masks)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def blocks_take_batch_first(transformer) -> bool:
    """Whether open_clip's ViT blocks take (B, L, D) tokens, read from the modules themselves: open_clip
    >= 2.26 builds them batch-first, 2.24 (the version FC-CLIP needs) sequence-first and its Transformer has no
    `batch_first` attribute at all; the attention module (nn.MultiheadAttention or open_clip's own) says which."""
    attention = transformer.resblocks[0].attn
    if hasattr(attention, "batch_first"):
        return bool(attention.batch_first)
    return bool(getattr(transformer, "batch_first", False))


def pool_regions(dense: torch.Tensor, regions: np.ndarray, num_regions: int) -> torch.Tensor:
    """Area-weighted mean of dense features under each region, L2-normalised.

    dense: (h, w, D) features on a grid covering the image; regions: (H, W) int region index, -1 = none.
    Each pixel contributes to the feature cell it falls in, so pooling is exact for any H, W.
    Returns (num_regions, D); a region without pixels gets a zero vector.
    """
    h, w, dim = dense.shape
    height, width = regions.shape
    cell_y = (np.arange(height) * h // height)[:, None]
    cell_x = (np.arange(width) * w // width)[None, :]
    cells = (cell_y * w + cell_x).ravel()
    flat = regions.ravel().astype(np.int64)
    keep = flat >= 0
    counts = np.bincount(flat[keep] * (h * w) + cells[keep], minlength=num_regions * h * w)
    weights = torch.from_numpy(counts.reshape(num_regions, h * w).astype(np.float32))
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1)
    pooled = weights @ dense.reshape(h * w, dim).float()  # (M, D)
    return F.normalize(pooled, dim=-1)


def maskclip_value_path(tokens: torch.Tensor, last_block, ln_post, proj) -> torch.Tensor:
    """(B, g, g, D) normalised dense embeddings from the (B, 1 + g*g, width) tokens entering the last block:
    only its value path is kept (MaskCLIP: v = W_v·LN(x), attention output projection, `ln_post`, `proj`)."""
    y = last_block.ln_1(tokens)
    dim = y.shape[-1]
    v = F.linear(y, last_block.attn.in_proj_weight[2 * dim:], last_block.attn.in_proj_bias[2 * dim:])
    v = last_block.attn.out_proj(v)  # value path only, no attention mixing, no MLP
    v = ln_post(v[:, 1:])
    if proj is not None:
        v = v @ proj
    grid = int(round(v.shape[1] ** 0.5))
    return F.normalize(v, dim=-1).reshape(v.shape[0], grid, grid, -1)


def pool_masks(dense: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
    """`pool_regions` for possibly overlapping masks: (h, w, D) features, (M, H, W) bool masks -> (M, D)."""
    h, w, dim = dense.shape
    num, height, width = masks.shape
    cells = torch.from_numpy(((np.arange(height) * h // height)[:, None] * w + (np.arange(width) * w // width)[None, :]).ravel())
    weights = torch.zeros(num, h * w).index_add_(1, cells, torch.from_numpy(masks.reshape(num, -1)).float())
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1)  # (M, h*w)
    return F.normalize(weights @ dense.reshape(h * w, dim).float(), dim=-1)

