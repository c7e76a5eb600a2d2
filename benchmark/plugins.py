"""Imports every module under baselines/ and methods/, so each `@register_method` runs before the registry is
read. A new method is one module dropped into methods/ (plus its YAML in configs/method/): nothing to edit here.
"""
import importlib
import pkgutil

import baselines
import methods

for package in (baselines, methods):
    for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        importlib.import_module(module.name)
