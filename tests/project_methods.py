"""The methods this project ships (modules under baselines/ and methods/): what its own tests cover. Methods that
installed plugins (entry points) or COVSEG_PATH folders register are left to their packages' tests."""
import benchmark.plugins  # noqa: F401  (registers every method)
from benchmark.method import METHODS

PROJECT_PACKAGES = ("baselines", "methods")


def project_methods() -> list[str]:
    return [name for name in METHODS.names() if METHODS.get(name).__module__.split(".")[0] in PROJECT_PACKAGES]
