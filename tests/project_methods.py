"""The methods this project ships (modules under baselines/ and methods/): what its own tests cover. Methods that
installed plugins (entry points) or COVSEG_PATH folders register are left to their packages' tests."""
from benchmark.method import METHODS
from benchmark.plugins import load_methods

PROJECT_PACKAGES = ("baselines", "methods")


def project_methods() -> list[str]:
    load_methods()
    return [name for name in METHODS.names() if METHODS.get(name).__module__.split(".")[0] in PROJECT_PACKAGES]
