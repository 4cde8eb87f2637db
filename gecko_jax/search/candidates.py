"""FRet candidate lists: the top-N neighbours of each generated query, seed passage included."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gecko_jax.search.scann_index import VectorIndex


def top_n_with_seed(
    index: VectorIndex, queries: np.ndarray, seed_ids: np.ndarray, n: int
) -> np.ndarray:
    """Top-``n`` corpus indices per query, best first, with ``seed_ids[i]`` always in row ``i``.

    The seed passage is the one the query was generated from, so relabelling (positive and hard
    negative selection) must be able to consider it even when the initial embedder ranks it
    outside the top N. A missing seed replaces the lowest-ranked candidate; the other ranks stay
    as retrieved, and since the index returns distinct passages there are no duplicates.
    """
    seed_ids = np.asarray(seed_ids)
    if seed_ids.shape != (len(queries),) or not np.issubdtype(seed_ids.dtype, np.integer):
        raise ValueError(
            f"seed_ids must be integers of shape ({len(queries)},), got {seed_ids.dtype} "
            f"{seed_ids.shape}"
        )
    if len(seed_ids) and (seed_ids.min() < 0 or seed_ids.max() >= index.size):
        raise ValueError(
            f"seed_ids must lie in [0, {index.size}), got [{seed_ids.min()}, {seed_ids.max()}]"
        )
    candidates, _ = index.search(queries, n)
    return insert_seed(candidates, seed_ids)


def insert_seed(candidates: np.ndarray, seed_ids: np.ndarray) -> np.ndarray:
    """``candidates`` (in place) with ``seed_ids[i]`` replacing the last of row ``i`` if absent."""
    missing = ~(candidates == seed_ids[:, None]).any(axis=1)
    candidates[missing, -1] = seed_ids[missing]
    return candidates


def merge_top_k(
    parts: Iterable[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """One query's global top-``k`` (ids, scores), best first, from its top-k in each shard.

    The union of every shard's top-k holds the global top-k, so with exact shards this equals
    exact search over the whole corpus. Equal scores go to the smaller id, so the merge does not
    depend on the order the shards arrive in.
    """
    parts = list(parts)
    ids = np.concatenate([i for i, _ in parts]).astype(np.int64)
    scores = np.concatenate([s for _, s in parts]).astype(np.float32)
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]
