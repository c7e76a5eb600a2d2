"""Semantic and panoptic evaluators, stream metrics, the scoring loop every face shares, a run's summary from its
raw statistics (summary.py, `covseg report`), and `StreamEvaluator` (benchmark/evaluation/stream_evaluator.py):
the harness's evaluator for any training loop.

`StreamEvaluator` is imported on first use, so the evaluators stay light to import.
"""


def __getattr__(name: str):
    if name == "StreamEvaluator":
        from benchmark.evaluation.stream_evaluator import StreamEvaluator

        return StreamEvaluator
    raise AttributeError(f"module 'benchmark.evaluation' has no attribute {name!r}")
