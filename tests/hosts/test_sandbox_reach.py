"""sandbox=true: the worker's read list comes from what it imports, never the parent's current directory or
the data root; it cannot read other processes' /proc entries nor write the feature cache other runs read."""
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2")


def test_the_read_list_leaves_out_the_current_directory_and_folders_holding_private_data(monkeypatch, tmp_path):
    from benchmark.hosts.worker.sandbox import PACKAGES, code_folders

    here, data, packages, harness = (tmp_path / name for name in ("here", "here-data", "site", "harness"))
    for folder in (here, data / "root", packages):
        folder.mkdir(parents=True)
    monkeypatch.chdir(here)
    monkeypatch.setattr(sys, "path", ["", str(here), str(data), str(packages)])
    folders = code_folders(harness, [data / "root"])
    assert folders == [harness / package for package in PACKAGES] + [packages.resolve()]


def test_the_write_list_names_a_few_devices_never_dev_or_a_disk(tmp_path):
    from benchmark.hosts.worker.sandbox import allowed_paths

    write = allowed_paths(tmp_path, [], [])["write"]
    devices = [path for path in write if path.startswith("/dev")]
    assert "/dev" not in write and "/dev/null" in devices
    assert not any(Path(path).is_block_device() for path in devices)


@pytest.mark.slow  # ~10 s: a sandboxed worker
def test_a_sandboxed_worker_reaches_neither_proc_nor_the_current_directory_nor_the_shared_cache(
        run_demo, monkeypatch, tmp_path):
    from benchmark.confine.landlock import landlock_abi

    if not landlock_abi():
        pytest.skip("Linux Landlock is not available here")
    folder, here, shared = tmp_path / "reach", tmp_path / "here", tmp_path / "features"
    shutil.copytree(CHEATS / "reach", folder)
    here.mkdir()
    (here / "labels.txt").write_text("the labels")
    (folder / "plan.py").write_text(f"SECRET = {str(here / 'labels.txt')!r}\nSHARED_CACHE = {str(shared)!r}\n")
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    monkeypatch.chdir(here)
    monkeypatch.setattr(sys, "path", [str(here), *sys.path])  # as `python -m benchmark` run from here has it
    run_demo("method=cheat_reach", "isolate=true", "sandbox=true", f"model.cache_dir={shared}", *TINY)
    assert not shared.exists() or not any(path.is_file() for path in shared.rglob("*"))


@pytest.mark.slow  # ~30 s: a run through the CLI, so that Hydra scans the plugins afresh
def test_a_hydra_plugin_that_loads_in_the_parent_is_recorded_as_foreign_code(demo_root, tmp_path):
    import json
    import subprocess

    plugin = tmp_path / "path" / "hydra_plugins" / "patching.py"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("from benchmark.evaluation import semantic  # would patch the evaluator in the parent\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path / "path")}
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "method=zeroshot", "isolate=true", *TINY,
                           f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [manifest] = (tmp_path / "results").rglob("manifest.json")
    plugins = {record["module"] for record in json.loads(manifest.read_text())["plugins"]}
    assert "hydra_plugins.patching" in plugins
