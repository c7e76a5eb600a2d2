"""Help that shows everything there is: multi-line YAML comments in `run -h`, `perf -h` listing every benchmark,
the closest section key for a bare one (`k=3`), and one line naming the extra a sweep launcher needs."""
import importlib.util
import pkgutil

import pytest

import benchmark.perf
from benchmark.__main__ import main
from benchmark.cli import run_help, run_main
from benchmark.errors import UserError


def test_run_help_keeps_comments_continued_on_the_next_lines():
    text = run_help(["method=knnclip"])
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("method.index=auto"))
    block = " ".join(line.strip() for line in lines[index:index + 4])
    assert "retrained as the database grows; or a faiss index factory string" in block
    for option in ("dinov2_vitg14", "renormalise (P_base / (1 - p_void), void 0)", "| drop (P_base as given, void 0)"):
        assert option in " ".join(text.split()), option
    assert all(len(line) <= 120 for line in lines if line.startswith("  method."))


def test_perf_help_lists_every_benchmark(capsys):
    assert main(["perf", "--help"]) == 0
    out = capsys.readouterr().out
    names = [m.name for m in pkgutil.iter_modules(benchmark.perf.__path__)]
    assert "stream" in names and all(f"\n  {name:12s}" in out for name in names)
    assert main(["--help"]) == 0
    assert "perf eval|data|retrieval|startup|predictions|stream" in capsys.readouterr().out


@pytest.mark.parametrize("given, hint", [("k=3", "method.k"), ("max_images=4", "eval.max_images"),
                                         ("sed=1", "seed")])
def test_a_bare_key_suggests_the_section_that_has_it(given, hint):
    with pytest.raises(UserError, match=rf"unknown config key '{given.split('=')[0]}' \(did you mean: {hint}\?\)"):
        run_main([given, "--cfg", "job"])


@pytest.mark.parametrize("launcher, install", [("joblib", "pip install 'covseg-bench[joblib]'"),
                                               ("submitit_slurm", "pip install hydra-submitit-launcher")])
def test_a_launcher_without_its_plugin_names_what_to_install(monkeypatch, tmp_path, launcher, install):
    real = importlib.util.find_spec

    def without_hydra_plugins(name, *args):  # what find_spec does when no launcher plugin is installed at all
        if name.startswith("hydra_plugins."):
            raise ModuleNotFoundError("No module named 'hydra_plugins'", name="hydra_plugins")
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_hydra_plugins)
    with pytest.raises(UserError, match=rf"^hydra/launcher={launcher} needs its Hydra plugin, which is not "
                                        rf"installed: {install}$".replace("[", r"\[").replace("]", r"\]")):
        run_main(["-m", "method=knnclip,zeroshot", f"hydra/launcher={launcher}", f"results_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())
