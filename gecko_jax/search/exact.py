"""Exact top-k search over unit-norm embeddings (inner product == cosine).

It is the reference every approximate index (``search.scann_index``) is measured against, and
what evaluation searches with.
"""

from __future__ import annotations

import numpy as np


def exact_top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` highest inner products per query, best first."""
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, corpus {corpus.shape}")
    k = min(k, corpus.shape[0])
    indices = np.empty((queries.shape[0], k), np.int64)
    scores = np.empty((queries.shape[0], k), np.float32)
    for start in range(0, queries.shape[0], chunk_size):
        sims = queries[start : start + chunk_size] @ corpus.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices[start : start + chunk_size] = np.take_along_axis(top, order, axis=1)
        scores[start : start + chunk_size] = np.take_along_axis(top_scores, order, axis=1)
    return indices, scores
