"""The methods this project ships (modules under baselines/ and methods/): what its own tests cover. Methods that
installed plugins (entry points) or COVSEG_PATH folders register are left to their packages' tests. `build` makes
one on a segmenter with its defaults and the given parameters; `step_data` a step of the demo's training set."""
from benchmark.method import METHODS, StepData
from benchmark.plugins import load_methods

PROJECT_PACKAGES = ("baselines", "methods")


def project_methods() -> list[str]:
    load_methods()
    return [name for name in METHODS.names() if METHODS.get(name).__module__.split(".")[0] in PROJECT_PACKAGES]


def build(name: str, segmenter, vocabulary, **params):
    from omegaconf import OmegaConf

    cls = METHODS.get(name)
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Config), params))
    return cls(config, segmenter, len(vocabulary), seed=0)


def step_data(train, step: int, classes: list[int], seen: list[int], count: int = 6):
    indices = [i for i in range(len(train)) if set(train.classes_present(i)) & set(classes)][:count]
    return StepData.of_stream(step, classes, seen, train.vocabulary, train, indices)
