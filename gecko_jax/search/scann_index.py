"""A maximum-inner-product index over unit-norm embeddings: ScaNN, or exact search when small.

FRet (paper section 4) retrieves the top-N passages for every generated query from a large
corpus, which exact search makes quadratic; ScaNN (a k-means tree, anisotropic asymmetric hashing
inside the searched leaves, then exact re-scoring of the best candidates) makes it affordable.
Both backends return the same shapes, so callers never care which one answered.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gecko_jax.search.exact import exact_top_k

# Vectors whose norm is this far from 1 are rejected: in an inner-product index, longer vectors
# win regardless of direction, so unnormalised embeddings silently corrupt the ranking.
NORM_TOLERANCE = 1e-3
# ScaNN's own default; training k-means and the hash codebooks on more buys little.
MAX_TRAINING_SAMPLE = 100_000
QUANTIZATIONS = ("ah", "none")


@dataclass(frozen=True)
class IndexConfig:
    """How ``VectorIndex.build`` indexes a corpus; ``None`` fields are sized from the corpus.

    ``num_leaves`` defaults to about sqrt(n) and ``num_leaves_to_search`` to an eighth of them,
    which gives recall@20 >= 0.95 on ``benchmarks/scann_vs_exact.py``. ``reorder`` candidates are
    re-scored exactly; a search for more than ``reorder`` neighbours re-scores ``k`` instead, so
    any ``k`` is valid. Corpora with fewer than ``exact_below`` points use exact search, since
    ScaNN's tree needs enough points per leaf to train. ``seed`` fixes the k-means training,
    so the same corpus and config build the same index.
    """

    num_leaves: int | None = None
    num_leaves_to_search: int | None = None
    training_sample_size: int | None = None
    quantization: str = "ah"
    reorder: int = 100
    exact_below: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_leaves", "num_leaves_to_search", "training_sample_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if (
            self.num_leaves is not None
            and self.num_leaves_to_search is not None
            and self.num_leaves_to_search > self.num_leaves
        ):
            raise ValueError(
                f"num_leaves_to_search ({self.num_leaves_to_search}) exceeds num_leaves "
                f"({self.num_leaves})"
            )
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}"
            )
        if not isinstance(self.reorder, int) or self.reorder < 1:
            raise ValueError(f"reorder must be a positive int, got {self.reorder!r}")
        if not isinstance(self.exact_below, int) or self.exact_below < 0:
            raise ValueError(f"exact_below must be a non-negative int, got {self.exact_below!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def leaves(self, n: int) -> tuple[int, int]:
        """``(num_leaves, num_leaves_to_search)`` for a corpus of ``n`` points."""
        num_leaves = self.num_leaves or max(1, round(math.sqrt(n)))
        if num_leaves > n:
            raise ValueError(f"num_leaves ({num_leaves}) exceeds the corpus size ({n})")
        to_search = self.num_leaves_to_search or max(1, num_leaves // 8)
        return num_leaves, min(to_search, num_leaves)


def _scann_ops() -> Any:
    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError as error:
        raise ImportError(
            "VectorIndex needs ScaNN for corpora of IndexConfig.exact_below points or more: "
            "pip install scann==1.4.2 (Linux x86-64 only), or raise exact_below to search exactly"
        ) from error
    return scann_ops_pybind


def _check_matrix(name: str, x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D numpy array [n, dim], got {np.shape(x)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero dimensions: {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} has NaN or inf values in {bad.sum()} rows, first row {np.argmax(bad)}"
        )


def _check_corpus(embeddings: np.ndarray) -> None:
    _check_matrix("embeddings", embeddings)
    if embeddings.dtype != np.float32:
        raise ValueError(f"embeddings must be float32, got {embeddings.dtype}")
    if embeddings.shape[0] == 0:
        raise ValueError("embeddings is an empty corpus: nothing to index")
    off = np.abs(np.linalg.norm(embeddings, axis=1) - 1.0)
    if off.max() > NORM_TOLERANCE:
        row = int(np.argmax(off))
        raise ValueError(
            f"embeddings must be unit-norm for inner-product search: {np.sum(off > NORM_TOLERANCE)}"
            f" rows are not (row {row} has norm {np.linalg.norm(embeddings[row]):.4f}); "
            "divide by np.linalg.norm(x, axis=1, keepdims=True)"
        )


def _scann_config(embeddings: np.ndarray, config: IndexConfig) -> str:
    """ScaNN's text proto for ``config``, with the k-means seeds that its builder leaves out."""
    n = embeddings.shape[0]
    num_leaves, to_search = config.leaves(n)
    sample = min(n, config.training_sample_size or MAX_TRAINING_SAMPLE)
    builder = (
        _scann_ops()
        .builder(embeddings, config.reorder, "dot_product")
        .tree(
            num_leaves=num_leaves,
            num_leaves_to_search=to_search,
            training_sample_size=sample,
            random_init=False,  # k-means++: ScaNN's random initialisation ignores the seed
        )
    )
    if config.quantization == "ah":
        builder = builder.score_ah(
            2, anisotropic_quantization_threshold=0.2, training_sample_size=sample
        ).reorder(config.reorder)
    else:
        builder = builder.score_brute_force()
    text = builder.create_config()
    for block in ("partitioning {", "asymmetric_hash {"):
        text = text.replace(block, f"{block}\n  clustering_seed: {config.seed}", 1)
    return text


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the ``exact`` neighbours (one row per query) that ``found`` holds."""
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, exact, strict=True))
    return hits / exact.size


class VectorIndex:
    """Top-k inner-product search over a fixed corpus of unit-norm float32 embeddings."""

    def __init__(self, embeddings: np.ndarray, config: IndexConfig, searcher: Any = None):
        """Use ``build`` or ``load``; this only assembles their results."""
        self._embeddings = embeddings
        self.config = config
        self._searcher = searcher

    @classmethod
    def build(cls, embeddings: np.ndarray, config: IndexConfig = IndexConfig()) -> VectorIndex:
        """Validate ``embeddings`` and index them, with ScaNN unless the corpus is small."""
        _check_corpus(embeddings)
        embeddings = np.ascontiguousarray(embeddings)
        if embeddings.shape[0] < config.exact_below:
            return cls(embeddings, config)
        text = _scann_config(embeddings, config)
        return cls(embeddings, config, _scann_ops().create_searcher(embeddings, text))

    @property
    def backend(self) -> str:
        """``"scann"`` or ``"exact"``."""
        return "exact" if self._searcher is None else "scann"

    @property
    def size(self) -> int:
        """Number of indexed corpus points."""
        return self._embeddings.shape[0]

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        _check_matrix("queries", queries)
        if queries.shape[1] != self._embeddings.shape[1]:
            raise ValueError(
                f"queries have dim {queries.shape[1]}, the index {self._embeddings.shape[1]}"
            )
        return np.ascontiguousarray(queries, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (int64) and scores (float32) of the top ``min(k, n)`` per query, best first.

        ScaNN can find fewer than ``k`` points in the searched leaves; those queries are answered
        by exact search instead, so both backends always return exactly ``min(k, n)`` columns.
        """
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        queries = self._queries(queries)
        k = min(int(k), self.size)
        if self._searcher is None:
            return exact_top_k(queries, self._embeddings, k)
        indices, scores = self._searcher.search_batched_parallel(
            queries, final_num_neighbors=k, pre_reorder_num_neighbors=max(k, self.config.reorder)
        )
        indices, scores = indices.astype(np.int64), scores.astype(np.float32)
        short = np.isnan(scores).any(axis=1)
        if short.any():
            indices[short], scores[short] = exact_top_k(queries[short], self._embeddings, k)
        return indices, scores

    def recall_against_exact(
        self, queries: np.ndarray, k: int, sample: int = 1000, seed: int = 0
    ) -> float:
        """Fraction of the exact top-``k`` that ``search`` finds, over a seeded query sample."""
        queries = self._queries(queries)
        rows = np.random.default_rng(seed).choice(
            len(queries), min(sample, len(queries)), replace=False
        )
        found, _ = self.search(queries[rows], k)
        exact, _ = exact_top_k(queries[rows], self._embeddings, k)
        return recall(found, exact)

    def save(self, directory: str | Path) -> None:
        """Write the config, the embeddings (exact search and fallbacks need them) and ScaNN."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"backend": self.backend, "config": dataclasses.asdict(self.config)}
        (directory / "index.json").write_text(json.dumps(meta, indent=2))
        np.save(directory / "embeddings.npy", self._embeddings)
        if self._searcher is not None:
            (directory / "scann").mkdir(exist_ok=True)
            self._searcher.serialize(str(directory / "scann"), relative_path=True)

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        """Read an index written by ``save``."""
        directory = Path(directory)
        meta = json.loads((directory / "index.json").read_text())
        embeddings = np.load(directory / "embeddings.npy")
        searcher = None
        if meta["backend"] == "scann":
            searcher = _scann_ops().load_searcher(str(directory / "scann"))
        return cls(embeddings, IndexConfig(**meta["config"]), searcher)
