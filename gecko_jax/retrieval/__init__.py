"""Nearest-neighbour search over passage embeddings for FRet candidate mining (paper section 4).

``VectorIndex`` wraps ScaNN (or exact search for small corpora) behind one API, and
``top_n_with_seed`` turns its results into the top-N candidates that always hold the seed passage.
"""

from gecko_jax.retrieval.candidates import top_n_with_seed
from gecko_jax.retrieval.index import IndexConfig, VectorIndex

__all__ = ["IndexConfig", "VectorIndex", "top_n_with_seed"]
