"""The command lines, one module per console script (``setup.py``): ``demo`` (gecko-jax),
``train``, ``evaluate``, ``export``, ``fret``, ``fret_beam``, ``rerank_eval``, ``ablate``; with the
flags they share and gin file lookup. gin and argparse live here, not in the library."""
