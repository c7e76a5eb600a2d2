"""`covseg new-method NAME [--dir DIR]`: a method of one's own as an installable package, ready to run.

Writes DIR (default ./covseg-NAME):

    pyproject.toml                        the `covseg_bench.plugins` entry point, and package-data so that the
                                          YAML reaches the wheel (without it the method is found but unusable)
    covseg_NAME/method.py                 the method: class prototypes blended with the frozen segmenter
    covseg_NAME/configs/method/NAME.yaml  its keys and defaults (`method.KEY=VALUE`)
    tests/test_NAME.py                    runs it on the demo stream for two steps
    README.md                             how to install, run and test it

`pip install ./covseg-NAME` (add `-e` while developing), then `covseg run method=NAME` from any folder.
"""
from __future__ import annotations

import argparse
import keyword
import re
from pathlib import Path

from benchmark.errors import UserError

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "covseg-{name}"
version = "0.1.0"
description = "The {name} method for covseg-bench"
requires-python = ">=3.10"
dependencies = ["covseg-bench"]

[project.optional-dependencies]
test = ["pytest>=8"]

# covseg-bench imports this module, whose @register_method registers `{name}`
[project.entry-points."covseg_bench.plugins"]
{name} = "{package}.method"

[tool.setuptools.packages.find]
include = ["{package}*"]

# the YAML beside the module must reach the wheel: without it `method={name}` finds no configs/method/{name}.yaml
[tool.setuptools.package-data]
{package} = ["configs/*/*.yaml"]
'''

METHOD = '''\
"""{name}: class prototypes (scaffolded by `covseg new-method`; replace learn / predict with your method).

learn: the mean mask embedding of every class seen in training (a proposal counts for the class that covers
most of its labelled pixels); predict: the frozen segmenter's zero-shot class probabilities, blended with a
softmax over the cosine similarities to the prototypes of the asked classes that have one. Keep `Config` and
configs/method/{name}.yaml in step: the YAML gives the defaults, the dataclass the types and checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import IGNORE_LABEL, ImageInput, Vocabulary
from benchmark.errors import UserError
from benchmark.method import ContinualMethod, SegmentationOutput, StepData, register_method
from benchmark.models.inference import outputs_from_probs


@register_method("{name}")
class {cls}(ContinualMethod):
    @dataclass
    class Config:
        weight: float = 0.5  # share of the prototype probabilities in the blend
        temperature: float = 0.05  # softmax temperature over prototype similarities

        def __post_init__(self) -> None:  # runs when the config is validated: one line, before any work
            if not 0.0 <= self.weight <= 1.0:
                raise UserError(f"method.weight={{self.weight}} must lie in [0, 1]")
            if self.temperature <= 0:
                raise UserError(f"method.temperature={{self.temperature}} must be positive")

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        self.sums: torch.Tensor | None = None  # (num_classes, D) summed embeddings, sized at the first step
        self.counts = torch.zeros(num_classes)

    def learn(self, step: StepData) -> None:
        for sample in step.samples():  # labels outside the step's classes are already IGNORE_LABEL
            features = self.segmenter.cached_image_features([sample])[0]
            embeddings = features.embeddings
            if self.sums is None:
                self.sums = torch.zeros(self.num_classes, embeddings.shape[1])
            for index, mask in enumerate(features.mask_stack()):
                labels = sample.sem_seg[mask]
                labels = labels[labels != IGNORE_LABEL]
                if labels.size:
                    label = int(np.bincount(labels).argmax())
                    self.sums[label] += embeddings[index]
                    self.counts[label] += 1

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        ids = torch.tensor(vocab.ids)
        known = self.counts[ids] > 0  # asked classes with a prototype
        outputs = []
        for image, features in zip(images, self.segmenter.cached_image_features(images)):
            probs = self.segmenter.base_probs(features, vocab)  # (M, C) zero-shot
            if self.sums is not None and known.any():
                prototypes = F.normalize(self.sums[ids[known]], dim=1)
                similar = torch.zeros_like(probs)
                similar[:, known] = (features.embeddings @ prototypes.T / self.config.temperature).softmax(dim=1)
                probs = (1 - self.config.weight) * probs + self.config.weight * similar
            outputs.append(outputs_from_probs(features, probs, vocab, panoptic=image.panoptic,
                                              void_probs=self.segmenter.void_probs(features, vocab)))
        return outputs

    def state_dict(self) -> dict:
        return {{"sums": self.sums, "counts": self.counts}}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = state["sums"], state["counts"]

    def memory_bytes(self) -> int:
        held = [t for t in (self.sums, self.counts) if t is not None]
        return sum(t.numel() * t.element_size() for t in held)
'''

YAML = '''\
# {name}: class prototypes blended with the frozen segmenter (scaffolded by covseg new-method).
name: {name}
weight: 0.5        # share of the prototype probabilities in the blend
temperature: 0.05  # softmax temperature over prototype similarities
'''

TEST = '''\
"""{name} runs on the demo stream (two steps, few images: seconds on a CPU; the demo data is generated once
into $XDG_CACHE_HOME/covseg-bench/datasets) and learns something."""
import json

import pytest

from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.runner import run_stream


def test_{name}_runs_two_steps(tmp_path):
    cfg = load_config(["method={name}", "stream=demo_4steps", "stream.num_steps=2", "eval.max_images=6",
                       "stream.max_train_images_per_step=10", f"results_dir={{tmp_path / 'results'}}", "quiet=true"])
    run_dir = run_stream(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "{name}" and len(summary["matrices"]["miou"]) == 2
    assert summary["memory_bytes"][-1] > 0  # prototypes were learned


def test_{name}_refuses_a_bad_weight():
    with pytest.raises(UserError, match="method.weight=2.0 must lie in"):
        load_config(["method={name}", "method.weight=2"])
'''

README = '''\
# covseg-{name}

The `{name}` method for [covseg-bench](https://pypi.org/project/covseg-bench/), as a plugin package.

    pip install -e .            # or: pip install .   (covseg-bench must be installed)
    covseg list methods         # lists {name}
    covseg run method={name} method.weight=0.7 stream=demo_4steps
    python -m pytest tests      # two demo steps

`{package}/method.py` is the method, `{package}/configs/method/{name}.yaml` its keys. The entry point in
pyproject.toml makes covseg-bench import the module; `package-data` ships the YAML inside the wheel.
'''


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "Method"


def scaffold(name: str, target: Path) -> list[Path]:
    """Write the package for method `name` into the new folder `target`; returns the files written."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise UserError(f"new-method {name}: a method name is lower-case letters, digits and _ (a Python "
                        "identifier starting with a letter), e.g. my_method")
    from benchmark.config import group_options

    if name in group_options("method"):
        raise UserError(f"new-method {name}: a method '{name}' exists already (covseg list methods)")
    if target.exists():
        raise UserError(f"new-method {name}: {target} exists already; choose another --dir")
    package = f"covseg_{name}"
    values = {"name": name, "package": package, "cls": class_name(name)}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"{package}/__init__.py": '"""covseg-{name}"""\n',
        f"{package}/method.py": METHOD, f"{package}/configs/method/{name}.yaml": YAML, f"tests/test_{name}.py": TEST,
    }
    written = []
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="covseg new-method", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the method's name (method=NAME), a Python identifier: my_method")
    parser.add_argument("--dir", type=Path, default=None, help="the package folder to create (default ./covseg-NAME)")
    args = parser.parse_args(argv)
    target = args.dir or Path(f"covseg-{args.name}")
    written = scaffold(args.name, target)
    print(f"wrote {len(written)} files under {target}; next: pip install -e {target} && "
          f"covseg run method={args.name} stream=demo_4steps")
    return 0
