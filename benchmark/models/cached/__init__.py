"""`model=cached`: a base segmenter read from predictions exported by an external model. format.py: the files
(the spec) and writing them, for exporters; reading.py: reading and checking them; segmenter.py:
`CachedSegmenter`, which runs the producer's own inference over each step's vocabulary."""
