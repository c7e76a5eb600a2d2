"""Faces of the harness towards other tools: experiment trackers (wandb)."""
