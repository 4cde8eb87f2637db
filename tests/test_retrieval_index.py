"""VectorIndex (ScaNN or exact) and FRet's top-N candidates with the seed passage."""

from __future__ import annotations

import numpy as np
import pytest

from gecko_jax.search.candidates import top_n_with_seed
from gecko_jax.search.exact import exact_top_k
from gecko_jax.search.scann_index import IndexConfig, VectorIndex


def clustered(n: int, dim: int, seed: int, clusters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return clustered(30_000, 64, seed=0)


@pytest.fixture(scope="module")
def queries(corpus) -> np.ndarray:
    return clustered(300, 64, seed=1)


@pytest.fixture(scope="module")
def scann_index(corpus) -> VectorIndex:
    return VectorIndex.build(corpus)


def test_exact_backend_equals_exact_top_k():
    corpus, queries = clustered(500, 16, seed=0), clustered(20, 16, seed=1)
    index = VectorIndex.build(corpus)
    assert index.backend == "exact"
    for got, want in zip(index.search(queries, 7), exact_top_k(queries, corpus, 7), strict=True):
        np.testing.assert_array_equal(got, want)
    assert index.search(queries, 10_000)[0].shape == (20, 500)


def test_scann_recall_and_exactly_k_columns(scann_index, queries):
    assert scann_index.backend == "scann"
    indices, scores = scann_index.search(queries, 10)
    assert indices.shape == scores.shape == (300, 10)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "not best first"
    assert scann_index.recall_against_exact(queries, 10, sample=200) >= 0.95
    # More neighbours than IndexConfig.reorder: re-scoring widens to k instead of failing.
    assert scann_index.search(queries[:5], 150)[0].shape == (5, 150)


def test_scann_fills_short_results_from_exact_search():
    corpus, queries = clustered(2_000, 16, seed=2), clustered(10, 16, seed=3)
    config = IndexConfig(num_leaves=20, num_leaves_to_search=1, quantization="none", exact_below=0)
    index = VectorIndex.build(corpus, config)
    assert index.backend == "scann"
    # One leaf of ~100 points cannot hold 300 neighbours, so every row comes from exact search.
    want = exact_top_k(queries, corpus, 300)
    for got, expected in zip(index.search(queries, 300), want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_scann_build_is_reproducible_from_the_seed():
    corpus, queries = clustered(5_000, 32, seed=5), clustered(100, 32, seed=6)
    config = IndexConfig(num_leaves=70, num_leaves_to_search=3, reorder=10, exact_below=0)
    first, again = (VectorIndex.build(corpus, config).search(queries, 10)[0] for _ in range(2))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        (np.full((4, 8), 0.5, np.float32), "unit-norm"),
        (np.full((4, 8), np.nan, np.float32), "NaN"),
        (np.ones(8, np.float32), "2-D"),
        (np.zeros((0, 8), np.float32), "empty"),
        (clustered(4, 8, seed=0).astype(np.float64), "float32"),
    ],
)
def test_build_rejects_bad_embeddings(embeddings, message):
    with pytest.raises(ValueError, match=message):
        VectorIndex.build(embeddings)


def test_search_rejects_bad_queries():
    index = VectorIndex.build(clustered(10, 8, seed=0))
    with pytest.raises(ValueError, match="dim"):
        index.search(clustered(2, 4, seed=0), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(clustered(2, 8, seed=0), 0)


@pytest.mark.parametrize("backend", ["scann", "exact"])
def test_save_load_round_trip(backend, scann_index, corpus, queries, tmp_path):
    index = scann_index if backend == "scann" else VectorIndex.build(corpus[:1000])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert loaded.backend == backend and loaded.config == index.config
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)


def test_top_n_with_seed_inserts_missing_and_keeps_present():
    corpus = clustered(200, 16, seed=4)
    index = VectorIndex.build(corpus)
    queries = corpus[:2]
    ranked, _ = index.search(queries, 5)
    farthest = int(np.argmin(corpus @ corpus[1]))
    seeds = np.array([ranked[0, 2], farthest])
    candidates = top_n_with_seed(index, queries, seeds, 5)
    np.testing.assert_array_equal(candidates[0], ranked[0])
    np.testing.assert_array_equal(candidates[1], [*ranked[1, :4], farthest])
    assert all(len(set(row)) == 5 for row in candidates)
    with pytest.raises(ValueError, match="seed_ids"):
        top_n_with_seed(index, queries, np.array([0, 200]), 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reorder": 0}, "reorder"),
        ({"num_leaves": 4, "num_leaves_to_search": 5}, "exceeds num_leaves"),
        ({"quantization": "pq"}, "quantization"),
        ({"num_leaves": 0}, "num_leaves"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IndexConfig(**kwargs)


def test_more_leaves_than_points_is_an_error():
    with pytest.raises(ValueError, match="exceeds the corpus size"):
        IndexConfig(num_leaves=50).leaves(10)
