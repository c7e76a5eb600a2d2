"""`new-method NAME` scaffolds a plugin package that builds into a wheel holding its YAML, installs and runs from
another folder as is; a plugin whose YAML did not reach the wheel is named with the file it lacks; the harness's
own tests still collect with such a plugin installed, and its built-in runs do not import it."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from benchmark.errors import UserError
from benchmark.scaffold import scaffold

REPO = Path(__file__).resolve().parents[2]


def python(*args: str, site: Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python args` with `site` (an unpacked wheel: what pip installs) and this checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The scaffolded package `protos` built into a wheel by pip and unpacked into a site folder."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (the test extra brings it): cannot build the scaffolded wheel")
    work = tmp_path_factory.mktemp("scaffold")
    scaffold("protos", work / "covseg-protos")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(work / "wheel"), str(work / "covseg-protos")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "wheel").glob("covseg_protos-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "covseg_protos/configs/method/protos.yaml" in names  # package-data reached the wheel
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "[covseg_bench.plugins]\nprotos = covseg_protos.method" in archive.read(entry_points).decode()
        archive.extractall(work / "site")
    return work / "site"


def test_the_scaffolded_package_runs_its_test_from_another_folder(installed, demo_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tests = installed.parent / "covseg-protos" / "tests"
    result = python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), site=installed, cwd=elsewhere)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr
    assert not (elsewhere / "datasets").exists()  # the demo comes from the cache folder, not the working folder
    listed = python("-m", "benchmark", "list", "methods", site=installed, cwd=elsewhere)
    assert "protos" in listed.stdout.split(": ", 1)[1].split(", ")


# two runs in processes of their own: slow. By default, test_plugins.py's in-process runs check the same records
# with an installed entry-point package, and the scaffolded package's own test (above) runs its method
@pytest.mark.slow
def test_with_the_package_installed_a_built_in_run_imports_none_of_it_and_a_run_of_its_method_lists_it(
        installed, demo_root, tmp_path):
    tiny = ("stream=demo_4steps", "stream.num_steps=1", "eval.max_images=2", "eval.initial=false",
            "stream.max_train_images_per_step=2", "quiet=true", f"results_dir={tmp_path / 'results'}")
    plugins = {}
    for method in ("knnclip", "protos"):
        result = python("-m", "benchmark", "run", f"method={method}", *tiny, site=installed, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        [manifest] = (tmp_path / "results").glob(f"*/{method}/*/manifest.json")
        plugins[method] = {plugin["module"] for plugin in json.loads(manifest.read_text())["plugins"]}
    assert plugins == {"knnclip": set(), "protos": {"covseg_protos", "covseg_protos.method"}}


def test_a_plugin_without_its_yaml_says_which_module_and_which_file(installed, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    yaml = site / "covseg_protos" / "configs" / "method" / "protos.yaml"
    yaml.unlink()  # what a wheel built without package-data holds
    result = python("-m", "benchmark", "run", "method=protos", "--cfg", "job", site=site, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"error: method 'protos' is registered by module covseg_protos.method (entry point protos of group "
            f"covseg_bench.plugins), but its config {yaml} is missing") in result.stderr
    assert "package-data" in result.stderr


def test_the_harness_tests_collect_with_a_plugin_installed(installed):
    result = python("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/methods/test_memory.py",
                    "tests/run/test_runs.py", site=installed, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "knnclip" in result.stdout and "protos" not in result.stdout  # the project's methods only


def test_new_method_refuses_bad_names_and_existing_folders(tmp_path):
    for name, message in (("My-Method", "a method name is lower-case"), ("class", "a method name is lower-case"),
                          ("knnclip", "a method 'knnclip' exists already")):
        with pytest.raises(UserError, match=message):
            scaffold(name, tmp_path / "x")
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match="exists already; choose another --dir"):
        scaffold("fresh", tmp_path / "taken")
    assert not (tmp_path / "x").exists()
