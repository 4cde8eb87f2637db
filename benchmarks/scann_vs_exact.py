"""FRet candidate retrieval: ScaNN ``VectorIndex`` vs exact numpy search (``exact_top_k``).

A synthetic but clustered corpus stands in for passage embeddings: unit-norm points from a
Gaussian mixture (``--clusters`` random centres), and queries that are noisy copies of corpus
points, as generated queries are of their seed passages. Times the index build (printed apart),
then batched top-k search with both, and prints ScaNN's recall@k against exact search, queries/s
for both and the speed ratio (ScaNN / exact; the target is recall >= 0.95 at >= 3x).

    python benchmarks/scann_vs_exact.py [--corpus 100000] [--queries 10000] [--dim 384] [--k 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_data(
    n: int, q: int, dim: int, clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` corpus points around ``clusters`` centres, and ``q`` noisy copies of corpus points."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    spread = rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    corpus = unit(centres[rng.integers(0, clusters, n)] + spread)
    noise = 0.5 * rng.standard_normal((q, dim)).astype(np.float32) / np.sqrt(dim)
    return corpus, unit(corpus[rng.integers(0, n, q)] + noise)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else the architecture."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from gecko_jax.search.exact import exact_top_k
    from gecko_jax.search.scann_index import IndexConfig, VectorIndex, recall

    corpus, queries = clustered_data(args.corpus, args.queries, args.dim, args.clusters, args.seed)
    config = IndexConfig(seed=args.seed)
    num_leaves, to_search = config.leaves(args.corpus)
    VectorIndex.build(corpus[:1], IndexConfig(exact_below=2))  # imports ScaNN outside the timing
    index, build_s = timed(lambda: VectorIndex.build(corpus, config))
    (found, _), scann_s = timed(lambda: index.search(queries, args.k))
    (exact, _), exact_s = timed(lambda: exact_top_k(queries, corpus, args.k))

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"machine: {cpu_name()}, {os.cpu_count()} cpus{load}")
    print(f"corpus {args.corpus} x {args.dim}, {args.queries} queries, top-{args.k}")
    print(f"index: {index.backend}, {num_leaves} leaves, {to_search} searched, {config}")
    print(f"build: {build_s:.2f} s")
    print(f"recall@{args.k} (ScaNN vs exact): {recall(found, exact):.4f}")
    print(f"ScaNN: {scann_s:.2f} s, {args.queries / scann_s:,.0f} queries/s")
    print(f"exact: {exact_s:.2f} s, {args.queries / exact_s:,.0f} queries/s")
    print(f"speed ratio (ScaNN / exact): {exact_s / scann_s:.1f}x")


if __name__ == "__main__":
    main()
