"""`python -m benchmark perf data` runs end to end and prints both readers with their ratio."""

from __future__ import annotations

import re

import pytest

from benchmark.errors import UserError
from benchmark.perf import main


def test_perf_data_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "--images", "3", "--repeats", "1", "--short-side", "64"]) == 0
    out = capsys.readouterr().out
    rows = {
        m.group(1).strip(): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^(.+?)\s+([\d.]+)\s+([\d.]+)x$", out, re.M)
    }
    assert set(rows) == {"plain PIL (jpg + tif)", "SemSegFolder.load"}
    assert rows["plain PIL (jpg + tif)"][1] == 1.0
    assert rows["SemSegFolder.load"][0] > 0
    assert rows["SemSegFolder.load"][1] == pytest.approx(
        rows["SemSegFolder.load"][0] / rows["plain PIL (jpg + tif)"][0], rel=0.01
    )


def test_perf_unknown_name() -> None:
    with pytest.raises(UserError, match="did you mean: data"):
        main(["dat"])
