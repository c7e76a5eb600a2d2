"""Build hooks; everything else is in pyproject.toml.

- The optional C kernel: `optional=True`, so without a C compiler the install still succeeds and the evaluator
  uses its numpy path (same results, slower; `python -m benchmark perf eval` shows which one is in use).
- configs/ (a top-level folder of the repository, not a Python package) is shipped inside the wheel as
  benchmark/configs/, where `benchmark.config.CONFIG_DIR` finds it in an installed package. Editable installs
  and source checkouts read the repository's configs/ directly.
"""
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "benchmark" / "configs"
            shutil.copytree(Path(__file__).parent / "configs", target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithConfigs},
      ext_modules=[Extension("benchmark.evaluation._confusion", ["benchmark/evaluation/_confusion.c"], optional=True)])
