"""Every dataset the harness reads, one module each: its folder layout under the data root, the reader that
opens it and its `prepare` converter, registered in `benchmark.data.catalog`. Adding a dataset is adding a
module here; importing this package registers them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from benchmark.data.catalog import (DATASETS, PREPARE_COMMANDS, SkippingDataset, build_dataset, default_data_root,
                                    list_datasets, vocabulary_field)

__all__ = ["DATASETS", "PREPARE_COMMANDS", "SkippingDataset", "build_dataset", "default_data_root", "list_datasets",
           "vocabulary_field"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
