"""DINOv2 embedder at the image's own aspect ratio (short side to embedder_input_size, multiples of 14)."""
from types import SimpleNamespace

import numpy as np
import torch

from benchmark.data.types import ImageInput

from benchmark.models.embedders import DinoV2Embedder
from benchmark.models.dense import pool_regions


class NoSegmenter:
    digest = ""
    config = SimpleNamespace(cache_memory_mb=16)


def test_grid_keeps_the_aspect_ratio_and_pools_on_it():
    embedder = DinoV2Embedder("dinov2_vits14", NoSegmenter(), 28, pretrained=False, depth=1)
    assert embedder.grid_size(60, 100) == (2, 3)  # 28 x 46.7 -> 28 x 42
    assert embedder.grid_size(300, 90) == (7, 2)  # 93.3 x 28 -> 98 x 28
    rng = np.random.default_rng(0)
    wide, tall, square = (rng.integers(0, 255, size=shape, dtype=np.uint8)
                          for shape in ((60, 100, 3), (300, 90, 3), (50, 50, 3)))
    dense = embedder.dense_features([wide, tall, square, wide])
    assert embedder.calls == 1
    assert [tuple(d.shape) for d in dense] == [(2, 3, 384), (7, 2, 384), (2, 2, 384), (2, 3, 384)]
    assert torch.equal(dense[0], dense[3])  # one forward pass per grid size, same result per image
    # each image is resized alone to its grid; batching with others of that grid changes nothing
    assert torch.allclose(embedder.dense_features([tall])[0], dense[1], atol=1e-5)
    # pooling uses that grid: the left third of the wide image pools exactly the first patch column
    regions = np.full((60, 100), -1, dtype=np.int32)
    regions[:, :34] = 0
    pooled = embedder.region_embeddings([ImageInput("wide", wide)], [regions], [1])[0]
    assert torch.allclose(pooled[0], torch.nn.functional.normalize(dense[0][:, 0].mean(0), dim=0), atol=1e-5)
    assert torch.equal(pooled, pool_regions(dense[0], regions, 1))
