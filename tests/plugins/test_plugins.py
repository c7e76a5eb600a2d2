"""A method of one's own, without forking: from a folder on $COVSEG_PATH, or from an installed package's
`covseg_bench.plugins` entry point; its YAML comes from a `configs/` folder beside it (Hydra's searchpath). An
installed package is imported only by a run of its method: a built-in run records `plugins: []`."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

METHOD = textwrap.dedent('''
    from dataclasses import dataclass

    from baselines.zeroshot import ZeroShot
    from benchmark.method import register_method


    @register_method("{name}")
    class Mine(ZeroShot):
        """zero-shot under another name, with one key of its own"""

        @dataclass
        class Config(ZeroShot.Config):
            boost: float = 1.0  # a key of the plugin
''')


def write_plugin(module_dir: Path, configs_dir: Path, module: str, name: str) -> None:
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / f"{module}.py").write_text(METHOD.format(name=name))
    (configs_dir / "method").mkdir(parents=True)
    (configs_dir / "method" / f"{name}.yaml").write_text(f"# My own method.\nname: {name}\nboost: 2.0   # a key of the plugin\n")


def cli(*args, env_extra: dict, cwd: Path):
    env = {**os.environ, **env_extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_extra.get("PYTHONPATH"), os.environ.get("PYTHONPATH"),
                                                    str(Path(__file__).resolve().parents[2])) if p)
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=180,
                          env=env, cwd=cwd)


def test_a_method_from_a_folder_on_covseg_path_lists_validates_and_runs(tmp_path, demo_root):
    folder = tmp_path / "my_methods"
    write_plugin(folder, folder / "configs", "my_method", "mine")
    env = {"COVSEG_PATH": str(folder)}
    listed = cli("list", "methods", "-v", env_extra=env, cwd=tmp_path)
    assert listed.returncode == 0 and "  mine: My own method." in listed.stdout and "method.boost=2.0" in listed.stdout
    config = cli("run", "method=mine", "method.boost=3", "--cfg", "job", env_extra=env, cwd=tmp_path)
    assert config.returncode == 0, config.stderr
    assert "name: mine\n  boost: 3.0" in config.stdout
    results = tmp_path / "results"
    run = cli("run", "method=mine", f"data.root={demo_root}", f"results_dir={results}", "quiet=true",
              "stream.num_steps=1", "eval.max_images=2", env_extra={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [manifest] = [json.loads(p.read_text()) for p in results.glob("*/mine/*/manifest.json")]
    assert manifest["status"] == "complete" and manifest["method_source"]["module"] == "my_method"
    bad = cli("run", "method=mine", "method.bost=1", "--cfg", "job", env_extra=env, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown config key 'method.bost' (did you mean: method.boost?)" in bad.stderr


def install_package(site: Path, package: str, entry_point: str, method: str) -> Path:
    """What pip writes into `site` for a package whose `covseg_bench.plugins` entry point `entry_point` names
    `package` (its __init__ registers `method`, its configs/ holds the YAML); returns the module's file."""
    write_plugin(site / package, site / package / "configs", "__init__", method)
    dist_info = site / f"{package}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[covseg_bench.plugins]\n{entry_point} = {package}\n")
    return site / package / "__init__.py"


def test_a_method_from_an_installed_packages_entry_point(tmp_path):
    site = tmp_path / "site"
    install_package(site, "their_pkg", "theirs", "theirs")
    env = {"PYTHONPATH": str(site)}
    listed = cli("list", "methods", env_extra=env, cwd=tmp_path)
    assert listed.returncode == 0 and "theirs" in listed.stdout.split(": ", 1)[1].split(", ")
    config = cli("run", "method=theirs", "--cfg", "job", env_extra=env, cwd=tmp_path)
    assert config.returncode == 0 and "name: theirs\n  boost: 2.0" in config.stdout, config.stderr


def test_a_run_imports_the_entry_points_of_its_method_only(tmp_path, monkeypatch):
    from benchmark.plugins import foreign_module_files, method_entry_points

    site = tmp_path / "site"
    theirs = install_package(site, "their_pkg", "theirs", "theirs")
    other = install_package(site, "other_pkg", "not_its_method_name", "other")  # found by its YAML instead
    monkeypatch.syspath_prepend(str(site))
    names = lambda entry_points: sorted(e.name for e in entry_points)  # noqa: E731
    assert names(method_entry_points("theirs")) == ["theirs"]
    assert names(method_entry_points("other")) == ["not_its_method_name"]
    assert method_entry_points("knnclip") == [] and method_entry_points("zeroshot") == []
    assert {"theirs", "not_its_method_name"} <= set(names(method_entry_points(None)))  # list / diagnosis: all
    assert foreign_module_files("knnclip") == {} and foreign_module_files("theirs") == {"their_pkg": theirs}
    assert foreign_module_files("other") == {"other_pkg": other}
    assert "their_pkg" not in sys.modules and "other_pkg" not in sys.modules  # found on disk, nothing imported


@pytest.fixture
def entry_point_package(tmp_path, monkeypatch):
    """The package their_pkg (entry point and method `theirs`) on sys.path and on the PYTHONPATH a worker gets;
    afterwards its method and modules are forgotten by this process again."""
    from benchmark.method import METHODS

    site = tmp_path / "site"
    module = install_package(site, "their_pkg", "theirs", "theirs")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
    yield module
    METHODS._entries.pop("theirs", None)
    sys.modules.pop("their_pkg", None)


# isolated (two workers) is slow: the worker picks its method's entry points with the same load_methods(name)
# (test_a_run_imports_the_entry_points_of_its_method_only), and tests/hosts/test_isolation.py checks the plugin
# records of an isolated run by default
@pytest.mark.parametrize("isolate", ["false", pytest.param("true", marks=pytest.mark.slow)])
def test_a_built_in_run_records_no_plugins_and_a_run_of_the_packages_method_lists_it(entry_point_package,
                                                                                     run_demo, isolate):
    tiny = ("stream=demo_4steps", "stream.num_steps=1", "eval.max_images=2", "eval.initial=false",
            "stream.max_train_images_per_step=2", f"isolate={isolate}")
    built_in, _ = run_demo("method=zeroshot", *tiny)
    assert json.loads((built_in / "manifest.json").read_text())["plugins"] == []
    assert "their_pkg" not in sys.modules  # the package was never imported for a built-in run
    theirs, _ = run_demo("method=theirs", *tiny)
    [plugin] = json.loads((theirs / "manifest.json").read_text())["plugins"]
    assert plugin["module"] == "their_pkg" and plugin["path"] == str(entry_point_package)
    assert ("their_pkg" in sys.modules) == (isolate == "false")  # isolated: imported by the worker only
