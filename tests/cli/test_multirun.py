"""Hydra multirun sweeps: `run -m method=a,b seed=0,1` runs every combination, one run folder each, and
refuses a bad combination before the first job starts."""
import json

import pytest

from benchmark.cli import run_main
from benchmark.errors import UserError

QUICK = ("stream.num_steps=2", "eval.max_images=16", "stream.max_train_images_per_step=20", "quiet=true")


def test_multirun_two_methods_two_seeds_gives_four_run_folders(demo_root, tmp_path, monkeypatch, one_thread, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    results = tmp_path / "results"
    assert run_main(["-m", "method=knnclip,zeroshot", "seed=0,1", f"data.root={demo_root}",
                     f"results_dir={results}", *QUICK]) == 0
    summaries = sorted(results.glob("demo_4steps/*/*/summary.json"))
    assert len(summaries) == 4
    configs = sorted((p.parent / "config.yaml").read_text() for p in summaries)
    runs = sorted((json.loads(p.read_text())["method"], int(p.parent.name.split("-s")[1].split("-")[0]))
                  for p in summaries)
    assert runs == [("knnclip", 0), ("knnclip", 1), ("zeroshot", 0), ("zeroshot", 1)]
    assert all("max_images: 16" in c for c in configs)
    assert list(cwd.iterdir()) == []  # no outputs/ or multirun/ litter where the command ran
    assert sorted(p.name for p in results.iterdir()) == ["demo_4steps", "multirun"]  # hydra's sweep dir
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert all(line.startswith("[job ") for line in lines)  # parallel jobs' lines stay apart
    assert any(line.startswith("[job 3: method=zeroshot seed=1] step 2/2: mIoU") for line in lines)
    from benchmark.progress import Progress

    assert Progress.prefix == ""  # after the sweep this process prints as before


def test_multirun_refuses_a_bad_combination_before_running(demo_root, tmp_path):
    with pytest.raises(UserError, match="unknown method 'knnclp'.*did you mean: knnclip"):
        run_main(["--multirun", "method=knnclip,knnclp", f"data.root={demo_root}", f"results_dir={tmp_path}", *QUICK])
    with pytest.raises(UserError, match="method.k"):
        run_main(["-m", "method.k=4,four", f"data.root={demo_root}", f"results_dir={tmp_path}", *QUICK])
    assert list(tmp_path.iterdir()) == []  # nothing started
