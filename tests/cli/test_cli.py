import subprocess
import sys

import pytest


def run_cli(*args: str, cwd=None):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, expected", [
    (["run", "method=knnclp", "stream=demo_4steps"], "unknown method 'knnclp' (did you mean: knnclip?)"),
    (["run", "method=knnclip", "stream=ade847_10step"], "unknown stream 'ade847_10step' (did you mean: ade847_10steps"),
    (["runn"], "unknown subcommand 'runn' (did you mean: run?)"),
])
def test_unknown_names_one_line_no_traceback(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_dataset_names_path_setting_and_prepare(tmp_path):
    results = tmp_path / "results"
    result = run_cli("run", "stream=ade847_10steps", f"data.root={tmp_path / 'nodata'}", f"results_dir={results}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert str(tmp_path / "nodata" / "ADE20K_2021_17_01") in line and "data.root=" in line and "prepare ade20k_full" in line
    assert not results.exists()


def test_list_shows_registered_names():
    result = run_cli("list")
    assert result.returncode == 0
    assert "knnclip" in result.stdout and "zeroshot" in result.stdout and "demo_4steps" in result.stdout
    assert "tiny_random" in result.stdout


def test_run_help_lists_groups_settings_and_the_chosen_methods_keys():
    result = run_cli("run", "method=replay", "-h")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[replay]" in out and "[demo_4steps]" in out and "seed=0" in out and "eval.vocabulary=seen" in out
    assert "method.mem_size=40" in out and "images kept in the replay memory" in out
    assert run_cli("run", "--help").stdout.count("method.k=16") == 1  # the default method: knnclip


def test_run_cfg_job_prints_the_validated_config_and_runs_nothing(tmp_path):
    result = run_cli("run", "method=zeroshot", "seed=3", f"results_dir={tmp_path / 'r'}", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    import yaml

    config = yaml.safe_load(result.stdout)
    assert config["method"] == {"name": "zeroshot"} and config["seed"] == 3 and config["stream"]["num_steps"] == 4
    assert not (tmp_path / "r").exists()
    bad = run_cli("run", "method.kk=1", "--cfg", "job")
    assert bad.returncode == 2 and "unknown config key 'method.kk'" in bad.stderr


def test_list_methods_verbose_shows_keys_defaults_and_docs():
    result = run_cli("list", "methods", "-v")
    assert result.returncode == 0
    assert "  knnclip: kNN-CLIP (Gui et al.)" in result.stdout
    assert "method.k=16" in result.stdout and "neighbours retrieved per mask proposal" in result.stdout
    assert "method.strategy=Naive" in result.stdout


@pytest.mark.parametrize("command", [["list"], ["list", "methods", "-v"], ["run", "--help"],
                                     ["leaderboard", "results_dir=/nonexistent"], ["leaderboard", "--help"],
                                     ["leaderboard", "results_dir=RESULTS", "bootstrap=50"]])
def test_commands_that_run_no_model_import_no_torch(command, tmp_path):
    """Lazy imports (`perf startup` measures the seconds; this checks the cause). The real leaderboard reads a
    run folder with per-image counts (bootstrap interval) and draws its figures."""
    from benchmark.plugins import method_entry_points

    if command[0] == "leaderboard" and command[1:] != ["--help"] and method_entry_points(None):
        # the leaderboard imports installed method packages (they may register stream metrics and report
        # formats), and such a package imports torch: the harness's own laziness is what this test checks
        pytest.skip("a method package is installed: the leaderboard imports it, and it imports torch")
    if "results_dir=RESULTS" in command:
        import numpy as np

        from run_folders import KNN_DEFAULTS, make_run

        run_dir = make_run(tmp_path, "a", KNN_DEFAULTS, 30.0, manifest_extra={"step_classes": [[0], [1]]})
        (run_dir / "stats").mkdir()
        np.savez(run_dir / "stats" / "step_001.npz", confusion=np.eye(2, dtype=np.int64), image_count=np.asarray(1),
                 image_index=np.zeros(1, np.int32), image_class=np.zeros(1, np.int32), image_tp=np.ones(1),
                 image_gt=np.ones(1), image_pred=np.ones(1))
        command = ["leaderboard", f"results_dir={tmp_path}", "bootstrap=50"]
    code = ("import sys; from benchmark.__main__ import main; main(%r); "
            "sys.stderr.write('TORCH' if 'torch' in sys.modules else 'NO-TORCH')" % (command,))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stderr.endswith("NO-TORCH"), result.stderr


def test_a_launcher_without_its_plugin_names_the_extra(monkeypatch):
    import importlib.util

    from benchmark.cli import run_main
    from benchmark.errors import UserError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.hydra_joblib") else real_find_spec(name, *a))
    with pytest.raises(UserError, match=r"hydra/launcher=joblib needs its Hydra plugin.*covseg-bench\[joblib\]"):
        run_main(["-m", "method=zeroshot,knnclip", "hydra/launcher=joblib"])


def test_a_value_typed_with_shell_quotes_keeps_its_spaces_and_equals_signs():
    # the shell hands `name="kNN-CLIP k=32"` over as `name=kNN-CLIP k=32`, which Hydra's grammar alone refuses
    result = run_cli("run", "method=knnclip", "method.k=32", "name=kNN-CLIP k=32", "tags=[sweep]", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    import yaml

    config = yaml.safe_load(result.stdout)
    assert config["name"] == "kNN-CLIP k=32" and config["tags"] == ["sweep"] and config["method"]["k"] == 32


def test_an_override_that_does_not_parse_is_named_in_one_line():
    result = run_cli("run", "method=knnclip", "sta ck=1", "--cfg", "job")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "'sta ck=1'" in result.stderr


def test_a_data_root_whose_parent_does_not_exist_is_refused_and_nothing_is_written(tmp_path):
    typo = tmp_path / "nonexistent" / "x"
    result = run_cli("run", "method=zeroshot", f"data.root={typo}", f"results_dir={tmp_path / 'r'}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"data.root={typo}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interrupted_run_prints_the_command_that_continues_it(monkeypatch, capsys):
    import benchmark.runner
    from benchmark.__main__ import main

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark.runner, "run_stream", interrupted)
    assert main(["run", "method=zeroshot", "seed=3", "name=my run"]) == 130
    assert capsys.readouterr().err.strip() == ("interrupted; continue it with: python -m benchmark run method=zeroshot "
                                               "seed=3 'name=my run' resume=auto")
