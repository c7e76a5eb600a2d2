"""The sealed protocol: a method that tries to reach labels finds none, and scores what a label-blind method
scores. The cheater walks every object reachable by attribute access from what the protocol hands it (its
inputs, its own attributes: the segmenter, the config, whatever it stored) — out of reach by design are
reflection on code (frames, closures, gc), which no in-process seal can stop."""
from dataclasses import dataclass

import numpy as np
import pytest

from benchmark.data.types import ImageInput, Sample, SegmentationDataset
from benchmark.method import METHODS, ContinualMethod, SegmentationOutput, StepData


def reachable(*roots, limit: int = 200_000) -> list:
    """Objects reachable through instance attributes, slots, containers and bound methods."""
    seen, stack, out = set(), list(roots), []
    while stack and len(out) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), np.ndarray, type)):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, dict):
            stack += list(obj.values()) + list(obj.keys())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        if hasattr(obj, "__dict__") and not callable(obj) or hasattr(obj, "__dict__") and hasattr(obj, "_modules"):
            stack += list(vars(obj).values())
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                stack.append(getattr(obj, slot))
        if hasattr(obj, "__self__") and not isinstance(obj, type):
            stack.append(obj.__self__)
    return out


class Cheater(ContinualMethod):
    @dataclass
    class Config:
        pass

    found: dict = {}

    def learn(self, step: StepData) -> None:
        objects = reachable(step, self)
        samples = [o for o in objects if isinstance(o, Sample)] + list(step.samples())
        labels = {int(v) for s in samples for v in np.unique(s.sem_seg)} - {65535}
        Cheater.found.setdefault("learn", []).append({
            "datasets": [o for o in objects if isinstance(o, SegmentationDataset)],
            "handles": [name for name in ("dataset", "indices") if hasattr(step, name)],
            "outside_labels": labels - set(step.new_classes),
            "names_beyond_seen": set(step.vocabulary.ids) - set(step.seen_classes),
        })

    def predict(self, images: list[ImageInput], vocab) -> list[SegmentationOutput]:
        objects = reachable(images, vocab, self)
        ground_truth = {o.image_id: o for o in objects if isinstance(o, Sample)}
        record = Cheater.found.setdefault("predict", {"samples": 0, "datasets": 0, "label_fields": 0, "writable": 0})
        record["samples"] += sum(image.image_id in ground_truth for image in images)
        record["datasets"] += sum(isinstance(o, SegmentationDataset) for o in objects)
        record["label_fields"] += sum(hasattr(image, name) for image in images for name in ("sem_seg", "pan_seg", "segments"))
        record["writable"] += sum(image.image.flags.writeable for image in images)
        outputs = []
        for image in images:
            if image.image_id in ground_truth:  # the cheat: copy the answer
                outputs.append(SegmentationOutput(sem_seg=ground_truth[image.image_id].sem_seg.copy()))
            else:
                outputs.append(SegmentationOutput(sem_seg=np.full((image.height, image.width), vocab.ids[0], np.int64)))
        return outputs


class LabelBlind(Cheater):
    def learn(self, step: StepData) -> None:
        pass

    def predict(self, images, vocab):
        return [SegmentationOutput(sem_seg=np.full((i.height, i.width), vocab.ids[0], np.int64)) for i in images]


@pytest.fixture
def registered():
    for name, cls in (("cheater", Cheater), ("label_blind", LabelBlind)):
        METHODS._entries[name] = cls
    yield
    for name in ("cheater", "label_blind"):
        METHODS._entries.pop(name, None)


def test_a_cheating_method_finds_no_labels_and_scores_like_a_label_blind_one(registered, run_demo):
    Cheater.found = {}
    overrides = ("stream.max_train_images_per_step=8", "eval.max_images=16")
    _, cheated = run_demo("method=zeroshot", "method.name=cheater", *overrides)
    _, blind = run_demo("method=zeroshot", "method.name=label_blind", *overrides)
    assert cheated["metrics"] == blind["metrics"]
    for record in Cheater.found["learn"]:
        assert record == {"datasets": [], "handles": [], "outside_labels": set(), "names_beyond_seen": set()}
    assert Cheater.found["predict"] == {"samples": 0, "datasets": 0, "label_fields": 0, "writable": 0}


def test_oracle_proposals_are_an_explicit_recorded_path(run_demo):
    import json

    sealed_dir, _ = run_demo("method=zeroshot", "eval.max_images=4", "stream.max_train_images_per_step=4")
    oracle_dir, _ = run_demo("method=zeroshot", "model.proposals=oracle", "eval.max_images=4",
                             "stream.max_train_images_per_step=4")
    sealed = json.loads((sealed_dir / "manifest.json").read_text())["protocol"]
    oracle = json.loads((oracle_dir / "manifest.json").read_text())["protocol"]
    assert sealed.pop("preset")["name"] == oracle.pop("preset")["name"] == "covseg"  # tests/streams/test_protocol_presets.py
    assert sealed == {"ground_truth_access": None, "vocabulary": "seen"}
    assert oracle == {"ground_truth_access": "oracle_proposals", "vocabulary": "seen"}
