"""Zero-shot methods that reach for the validation labels in-process (see tests/cheats/README.md); each falls
back to zero-shot's own prediction for an image whose labels it cannot find."""
import gc
import sys
from pathlib import Path

import numpy as np

from baselines.zeroshot import ZeroShot
from benchmark.data.readers import SemSegFolder
from benchmark.data.types import IGNORE_LABEL, Sample, SegmentationDataset
from benchmark.method import SegmentationOutput, register_method


class Peeking(ZeroShot):
    def labels(self, image_id: str, images) -> np.ndarray | None:
        raise NotImplementedError

    def predict(self, images, vocab):
        honest = super().predict(images, vocab)
        outputs = []
        for image, output in zip(images, honest):
            labels = self.labels(image.image_id, images)
            labels = None if labels is None else np.where(labels == IGNORE_LABEL, vocab.ids[0], labels)  # never scored
            outputs.append(output if labels is None else SegmentationOutput(labels.astype(np.int64)))
        return outputs


@register_method("cheat_gc")
class CheatGC(Peeking):
    def labels(self, image_id, images):
        return next((o.sem_seg for o in gc.get_objects() if isinstance(o, Sample) and o.image_id == image_id), None)


@register_method("cheat_frames")
class CheatFrames(Peeking):
    def labels(self, image_id, images):
        frame = sys._getframe()
        while frame is not None and frame.f_code.co_name != "score_validation":  # the scoring loop
            frame = frame.f_back
        batch = frame.f_locals.get("batch", []) if frame is not None else []
        return next((s.sem_seg for s in batch if s.image_id == image_id), None)


@register_method("cheat_closure")
class CheatClosure(Peeking):
    validation: dict = {}

    def learn(self, step):
        cells = [cell.cell_contents for cell in step._load.__closure__ or ()]
        train = next((c for c in cells if isinstance(c, SegmentationDataset)), None)
        if isinstance(train, SemSegFolder):  # the training split's folders name the validation split's
            val = SemSegFolder(train.name, "val", Path(train.image_dir).parent / "validation",
                               Path(train.label_dir).parent / "validation", train.vocabulary)
            type(self).validation = {val.image_id(i): (val, i) for i in range(len(val))}

    def labels(self, image_id, images):
        found = self.validation.get(image_id)
        return None if found is None else found[0].load(found[1]).sem_seg


@register_method("cheat_vocab")
class CheatVocab(ZeroShot):
    """Shrinks the vocabulary it is handed to one class and predicts that class everywhere: if the runner
    filtered ground truth with the same object, that class would be the only one scored, at IoU 100."""

    def predict(self, images, vocab):
        first = vocab.classes[0]
        object.__setattr__(vocab, "classes", (first,))
        return [SegmentationOutput(np.full((image.height, image.width), first.id, dtype=np.int64)) for image in images]
