"""Method `cheat_disk`: reads the validation labels from the data root it "guessed" (the test writes the path
to guessed_root.txt beside this module); falls back to zero-shot where it cannot read them."""
from pathlib import Path

import numpy as np

from baselines.zeroshot import ZeroShot
from benchmark.data.demo import demo_root, demo_vocabulary
from benchmark.data.readers import SemSegFolder
from benchmark.data.types import IGNORE_LABEL
from benchmark.method import SegmentationOutput, register_method


@register_method("cheat_disk")
class CheatDisk(ZeroShot):
    def predict(self, images, vocab):
        try:
            root = demo_root(Path((Path(__file__).parent / "guessed_root.txt").read_text()), 0, 1)
            val = SemSegFolder("demo", "val", root / "images" / "validation", root / "annotations" / "validation",
                               demo_vocabulary())
            labels = {val.image_id(i): val.load(i).sem_seg for i in range(len(val))}
        except OSError:  # out of reach
            return super().predict(images, vocab)
        return [SegmentationOutput(np.where(labels[image.image_id] == IGNORE_LABEL, vocab.ids[0],
                                            labels[image.image_id]).astype(np.int64)) for image in images]
