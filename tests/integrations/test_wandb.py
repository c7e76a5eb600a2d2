"""logger=wandb: an offline run writes its wandb files under the run folder; with wandb unreachable the run
still completes (one warning, same results on disk)."""
import json

import pytest

pytest.importorskip("wandb")

SMALL = ("method=knnclip", "stream.num_steps=2", "eval.max_images=4", "stream.max_train_images_per_step=6")


@pytest.fixture(autouse=True)
def wandb_env(monkeypatch, tmp_path):
    """Keep wandb's own config, cache and data out of the home folder; no key from the environment."""
    for name in ("CONFIG_DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / f"wandb_{name.lower()}"))
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_offline_run_writes_wandb_files(run_demo):
    run_dir, summary = run_demo(*SMALL, "logger=wandb", "logger.mode=offline")
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    media = offline[0] / "files" / "media"
    assert list(media.glob("table/matrix_miou_*.table.json")) and list(media.glob("images/plots/matrix_miou_*.png"))
    table = json.loads(next(media.glob("table/matrix_miou_*.table.json")).read_text())
    assert table["columns"] == ["after_step", "C0", "C1"] and len(table["data"]) == 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and offline[0].name.endswith(manifest["tracker_id"])


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path):
    from omegaconf import OmegaConf

    from benchmark.integrations.wandb import WandbLogger

    settings = OmegaConf.create({"project": "covseg", "entity": None, "mode": "offline", "init_timeout": 30})
    manifest = {"run_id": "r1", "stream": "demo_4steps", "method": "knnclip", "stream_hash": "h",
                "stream_version": 1, "git": {}, "tracker_id": "abc123def4567890"}
    for attempt in range(2):  # the first start, then the start after resume=RUN_DIR
        logger = WandbLogger(settings)
        logger.start(tmp_path, OmegaConf.create({"seed": attempt}), manifest)
        logger.log_step({"step": attempt, "miou": 1.0})
        logger.finish({"metrics": {}, "matrices": {}}, [])
        assert not logger.failed
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all("-abc123def4567890" in run.name for run in runs)  # "-1" added within a second


def test_unreachable_wandb_warns_once_and_the_run_completes(run_demo, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with pytest.warns(RuntimeWarning, match="wandb init failed") as warned:
        run_dir, summary = run_demo(*SMALL, "logger=wandb", "logger.mode=online", "logger.init_timeout=2")
    assert sum("wandb" in str(w.message) for w in warned) == 1
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert summary["metrics"]["miou"]["final"] is not None and (run_dir / "plots" / "matrix_miou.png").is_file()
