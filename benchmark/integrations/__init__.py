"""Bridges to other libraries: `avalanche` (an Avalanche benchmark over a stream, for Avalanche's own training
loop and plugins)."""
