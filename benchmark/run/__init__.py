"""One run folder, results/<stream>/<method>/<run-id>/: its writer (the manifest's only author), the typed
manifest, per-step checkpoints, resumption, the run's state when stopped from outside, `covseg report` and
the per-run figures."""
