"""Build hook for the optional C kernel; everything else is in pyproject.toml.

`optional=True`: without a C compiler the install still succeeds and the evaluator uses its numpy path
(same results, slower; `python -m benchmark perf eval` shows which one is in use).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("benchmark.evaluation._confusion", ["benchmark/evaluation/_confusion.c"],
                             optional=True)])
