"""A method of one's own, without forking: from a folder on $COVSEG_PATH, or from an installed package's
`covseg_bench.plugins` entry point; its YAML comes from a `configs/` folder beside it (Hydra's searchpath)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
                                                    str(Path(__file__).resolve().parents[1])) if p)
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


def test_a_method_from_an_installed_packages_entry_point(tmp_path):
    site = tmp_path / "site"
    write_plugin(site / "their_pkg", site / "their_pkg" / "configs", "__init__", "theirs")
    dist_info = site / "their_pkg-0.1.dist-info"  # what pip writes for a package declaring the entry point
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[covseg_bench.plugins]\ntheirs = their_pkg\n")
    env = {"PYTHONPATH": str(site)}
    listed = cli("list", "methods", env_extra=env, cwd=tmp_path)
    assert listed.returncode == 0 and "theirs" in listed.stdout.split(": ", 1)[1].split(", ")
    config = cli("run", "method=theirs", "--cfg", "job", env_extra=env, cwd=tmp_path)
    assert config.returncode == 0 and "name: theirs\n  boost: 2.0" in config.stdout, config.stderr
