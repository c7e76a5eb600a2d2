"""checkpoint.keep: `last` keeps one checkpoint.pt (replaced after every step), `all` one folder per completed step
(checkpoints/step_NNN/, each a whole checkpoint); the numbers are the same either way, a keep=all run resumes
from its latest step, and runs made before the key existed resume as keep=last runs."""
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.run.checkpoint import CHECKPOINT_FILE, kept_steps, load_checkpoint
from benchmark.run.resume import config_differences
from benchmark.runner import run_stream

REPO = Path(__file__).resolve().parents[2]
SMALL = ["method=knnclip", "quiet=true", "eval.max_images=4", "stream.max_train_images_per_step=12"]
METRIC_KEYS = ("metrics", "matrices", "seen", "memory_bytes")


def numbers(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {key: summary[key] for key in METRIC_KEYS}


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory) -> dict[str, Path]:
    """The same small kNN-CLIP run (4 steps) made with checkpoint.keep=last and =all."""
    results = tmp_path_factory.mktemp("results")
    return {keep: run_stream(load_config([*SMALL, f"data.root={demo_root}", f"results_dir={results / keep}",
                                          f"checkpoint.keep={keep}"]))
            for keep in ("last", "all")}


def test_keep_all_keeps_every_step_and_changes_no_number(runs):
    last, every = runs["last"], runs["all"]
    assert numbers(every) == numbers(last)
    assert (last / CHECKPOINT_FILE).is_file() and not (last / "checkpoints").exists() and kept_steps(last) == {}
    assert not (every / CHECKPOINT_FILE).exists()
    assert kept_steps(every) == {t: every / "checkpoints" / f"step_{t:03d}" for t in range(4)}
    for step, folder in kept_steps(every).items():
        assert load_checkpoint(folder)["completed_step"] == step
        # each step folder holds its own side files (kNN-CLIP's faiss database) and nothing else
        side_files = {f"checkpoint-{step}-{n}.faiss" for n in (0, 1)}
        assert {p.name for p in folder.iterdir()} == {CHECKPOINT_FILE, *side_files}
    assert load_checkpoint(every)["completed_step"] == 3  # the run folder's checkpoint: the latest step's
    # the database grows step by step: each kept step holds the database of its time
    sizes = [(every / "checkpoints" / f"step_{t:03d}" / f"checkpoint-{t}-0.faiss").stat().st_size for t in range(4)]
    assert sizes == sorted(sizes) and sizes[-1] == (last / "checkpoint-3-0.faiss").stat().st_size
    assert OmegaConf.load(every / "config.yaml").checkpoint.keep == "all"


def test_a_keep_all_run_cut_short_mid_checkpoint_resumes_from_its_latest_step(runs, demo_root, tmp_path, monkeypatch):
    """Stopped while step 2's checkpoint was being written (one side file on disk, no checkpoint.pt): resume=auto
    continues at step 2 from step 1's checkpoint, rewrites step 2's folder and ends with the same numbers."""
    import benchmark.runner

    real_save = benchmark.runner.save_checkpoint

    def save_checkpoint(folder, step, state):
        if step == 2:
            (Path(folder) / "checkpoint-2-7.faiss").parent.mkdir(parents=True)
            (Path(folder) / "checkpoint-2-7.faiss").write_bytes(b"half")
            raise RuntimeError("stopped mid-checkpoint")
        real_save(folder, step, state)

    overrides = [*SMALL, f"data.root={demo_root}", f"results_dir={tmp_path}", "checkpoint.keep=all"]
    monkeypatch.setattr(benchmark.runner, "save_checkpoint", save_checkpoint)
    with pytest.raises(RuntimeError, match="stopped mid-checkpoint"):
        run_stream(load_config(overrides))
    [run_dir] = tmp_path.glob("*/*/*")
    assert sorted(kept_steps(run_dir)) == [0, 1] and load_checkpoint(run_dir)["completed_step"] == 1
    monkeypatch.setattr(benchmark.runner, "save_checkpoint", real_save)

    assert run_stream(load_config([*overrides, "resume=auto"])) == run_dir
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert numbers(run_dir) == numbers(runs["all"])
    assert sorted(kept_steps(run_dir)) == [0, 1, 2, 3]
    assert not (run_dir / "checkpoints" / "step_002" / "checkpoint-2-7.faiss").exists()


def test_a_run_made_before_checkpoint_keep_resumes_as_keep_last(demo_root):
    """A config.yaml without `checkpoint` (main's interrupted run) is the default keep=last: no difference."""
    old = OmegaConf.load(REPO / "tests" / "fixtures" / "main_runs" / "demo_4steps" / "zeroshot" / "interrupted"
                         / "config.yaml")
    assert "checkpoint" not in old
    base = ["method=zeroshot", f"data.root={demo_root}"]
    assert not [line for line in config_differences(old, load_config(base)) if line.startswith("checkpoint")]
    assert "checkpoint.keep: 'last' -> 'all'" in config_differences(old, load_config([*base, "checkpoint.keep=all"]))


def test_checkpoint_keep_takes_last_or_all(demo_root):
    with pytest.raises(UserError, match="checkpoint.keep=every is not one of: last, all"):
        load_config(["method=zeroshot", f"data.root={demo_root}", "checkpoint.keep=every"])


def test_checkpoint_keep_leaves_the_leaderboard_row_alone(runs):
    from benchmark.leaderboard.runs import config_identity

    identities = [config_identity(OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))) for run in runs.values()]
    assert identities[0] == identities[1] and "checkpoint" not in identities[0]
