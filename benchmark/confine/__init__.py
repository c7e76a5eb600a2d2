"""The method's worker confining itself under sandbox=true, before it imports anything but the standard
library: `python -m benchmark.confine FD` receives the parent's plan over its socket, leaves the network
(network.py), drops root (user.py), restricts its file access with Landlock (landlock.py), answers which
network block took hold, and only then runs the worker (benchmark.hosts.worker.worker) in the same process.
It runs single-threaded (no numpy, torch or plugin loaded yet), so every thread started later inherits each
restriction. The parent computes the plan (benchmark.hosts.worker.sandbox); what it guarantees per kernel:
docs/isolation-guarantees.md."""
