"""Streams: builders and frozen definitions (streams/builder.py), and the Python face for any training loop
(streams/library.py): `streams.load(name, data_root=None, protocol="covseg", **overrides) -> Stream`.

The face is imported on first use, so `import streams.builder` (the runner's) stays light.
"""
PUBLIC = ("load", "Stream", "Step", "Resize", "IGNORE_LABEL", "BACKGROUND_LABEL")


def __getattr__(name: str):
    if name in PUBLIC:
        from streams import library

        return getattr(library, name)
    raise AttributeError(f"module 'streams' has no attribute {name!r}")
