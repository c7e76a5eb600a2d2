"""Bridges to other libraries: `avalanche` (an Avalanche benchmark over a stream, for Avalanche's own training
loop and plugins) and `wandb` (an experiment tracker fed by the run writer)."""
