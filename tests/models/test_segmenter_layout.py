"""The CLIP segmenter's ViT blocks in both token layouts open_clip has used: batch-first (open_clip >= 2.26)
and sequence-first (2.24, the only version that runs FC-CLIP too, whose Transformer has no `batch_first`)."""
import numpy as np
import pytest
import torch


def tiny_segmenter():
    from omegaconf import OmegaConf

    from benchmark.config import ModelConfig
    from benchmark.models.segmenter import OpenVocabSegmenter

    config = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"name": "tiny_random"})
    return OpenVocabSegmenter(config, seed=0)


def make_sequence_first(transformer) -> None:
    """What open_clip 2.24 builds: nn.MultiheadAttention(batch_first=False) blocks, no Transformer.batch_first."""
    for block in transformer.resblocks:
        block.attn.batch_first = False
    if hasattr(transformer, "batch_first"):
        del transformer.batch_first


@pytest.mark.parametrize("layout", ["batch_first", "sequence_first"])
def test_batched_tokens_equal_one_image_at_a_time(layout):
    from benchmark.models.dense import blocks_take_batch_first

    segmenter = tiny_segmenter()
    transformer = segmenter.model.visual.transformer
    if layout == "sequence_first":
        make_sequence_first(transformer)
    assert blocks_take_batch_first(transformer) == (layout == "batch_first")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(40, 56, 3), dtype=np.uint8) for _ in range(3)]
    batched = segmenter.tokens_before_last_block(images)
    alone = torch.cat([segmenter.tokens_before_last_block([image]) for image in images])
    assert torch.allclose(batched, alone, atol=1e-5)  # images of a batch do not mix
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)
