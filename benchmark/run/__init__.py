"""One run folder, results/<stream>/<method>/<run-id>/, as storage: its writer (the manifest's only author), the
typed manifest, the raw statistics' files, per-step checkpoints, resumption, the run's state when stopped from
outside, and the per-run figures. What the numbers mean is benchmark.evaluation's, which writes through it."""
