"""Acceptance of the learning baselines on demo_4steps with tiny_random (deterministic seeds): fine-tuning
forgets, replay forgets less, joint training is the upper bound, kNN-CLIP forgets less than fine-tuning.
Each method runs once (module-scoped); training images are capped per step to keep the suite fast. The pinned
numbers hold with exact settings: float32 feature storage and, for kNN-CLIP, exact search (the defaults,
float16 storage and index=auto, move them by well under a point; see EXACT)."""
import json

import pytest

METHODS = ("finetune", "replay", "joint", "knnclip")
CAP = "stream.max_train_images_per_step=80"
EXACT = {"model.feature_dtype": "float32", "method.index": "Flat"}  # the settings the pinned numbers were measured with


@pytest.fixture(scope="module")
def summaries(demo_root, tmp_path_factory) -> dict:
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    results = tmp_path_factory.mktemp("results")
    out = {}
    for method in METHODS:
        exact = [f"{key}={value}" for key, value in EXACT.items() if method == "knnclip" or key != "method.index"]
        cfg = load_config([f"data.root={demo_root}", f"results_dir={results}", "quiet=true", f"method={method}", CAP,
                           *exact])
        out[method] = json.loads((run_stream(cfg) / "summary.json").read_text())
    print()
    print(f"{'method':10s} {'final':>6s} {'avg_inc':>7s} {'f_max':>6s} {'bwt':>6s} {'learn_s':>7s} {'memory_MB':>9s}")
    for method, s in out.items():
        m = s["metrics"]["miou"]
        print(f"{method:10s} {m['final']:6.1f} {m['avg_incremental']:7.1f} {m['forgetting_max']:6.1f} {m['bwt']:6.1f} "
              f"{sum(s['seconds']['learn']):7.1f} {s['memory_bytes'][-1] / 1e6:9.2f}")
    return out


def miou(summaries, method: str, metric: str) -> float:
    return summaries[method]["metrics"]["miou"][metric]


def test_finetune_forgets_at_least_5_points(summaries):
    assert miou(summaries, "finetune", "forgetting_max") >= 5


def test_replay_forgets_less_than_finetune(summaries):
    assert miou(summaries, "replay", "forgetting_max") < miou(summaries, "finetune", "forgetting_max")


def test_joint_reaches_the_best_final_miou(summaries):
    assert miou(summaries, "joint", "final") >= max(miou(summaries, m, "final") for m in ("finetune", "replay"))


def test_knnclip_forgets_less_than_finetune(summaries):
    assert miou(summaries, "knnclip", "forgetting_max") < miou(summaries, "finetune", "forgetting_max")


def test_costs_are_on_record(summaries):
    replay, finetune = summaries["replay"], summaries["finetune"]
    assert finetune["trainable_parameters"][0] > 0 and len(set(finetune["memory_bytes"])) == 1  # parameters only
    images = [r - f for r, f in zip(replay["memory_bytes"], finetune["memory_bytes"])]  # the replay memory's bytes
    assert all(0 < b <= 40 * 256 * 256 * 5 for b in images)  # at most mem_size demo images (<= 256 x 256) + labels


# Final mIoU of each method before the sealed protocol (commit 7a73da6, same settings): the contract change must
# not move them. joint's capped run moved (23.61 -> 24.05) on purpose: it used to label its old images with
# classes the capped step lists never revealed for them; uncapped it is unchanged (42.42, /tmp capture in the note).
FINAL_BEFORE_SEALING = {"finetune": 3.3813927668789012, "replay": 10.626712363367648, "joint": 24.050716687097037,
                        "knnclip": 19.428995090985314}


@pytest.mark.parametrize("method", METHODS)
def test_final_miou_unchanged_by_the_sealed_protocol(summaries, method):
    assert miou(summaries, method, "final") == pytest.approx(FINAL_BEFORE_SEALING[method], abs=1e-9)
