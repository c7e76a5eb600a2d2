import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    root = Path(os.environ.get("COVSEG_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"))
    if not root.is_dir():
        pytest.skip(f"shared fixtures not found at {root} (set COVSEG_FIXTURES)")
    return root
