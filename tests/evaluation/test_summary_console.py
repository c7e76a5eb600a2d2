"""The console run summary prints each number once: `base / old`, `novel / new` (the same numbers under a CSS
paper's and MiB's names)."""
from pathlib import Path

from benchmark.evaluation.summary import format_summary


def test_each_number_once_with_both_names():
    summary = {"matrices": {}, "method": "knnclip", "stream": "demo",
               "metrics": {"miou": {"final": 30.0, "old": 20.5, "new": 35.25, "base": 20.5, "novel": 35.25,
                                    "last": 49.0}}}
    text = format_summary(summary, Path("run"))
    assert "base / old" in text and "novel / new" in text
    assert text.count("20.5") == 1 and text.count("35.25") == 1
