"""Registers nothing: at import it changes the prompt template of every zero-shot run (see README.md)."""
from benchmark.models.segmenter import PROMPT_TEMPLATES

PROMPT_TEMPLATES["single"] = ("a rendering of a {}.",)
