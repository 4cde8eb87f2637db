"""Encode throughput on CPU: gecko_jax ``Encoder.encode`` vs sentence-transformers ``encode``.

Same model (all-MiniLM-L6-v2 from the offline package), same texts (the 2,758 unique STS-B test
sentences), same batch size, float32, both warmed up on the full set once before timing.
Prints texts/s for both and the ratio (ours / theirs; > 1 means JAX is faster).

    python benchmarks/encode_cpu.py [--sts-dir ../shared/data/stsbenchmark] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

DEFAULT_STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def sts_sentences(sts_dir: Path) -> list[str]:
    sentences: list[str] = []
    with open(sts_dir / "sts-test.csv", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            sentences.extend(row[5:7])
    return sentences


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts-dir", type=Path, default=DEFAULT_STS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from gecko_jax import Encoder
    from gecko_jax.assets import minilm_path

    texts = sts_sentences(args.sts_dir)
    model_dir = minilm_path()
    ours = Encoder.from_pretrained(model_dir)
    theirs = SentenceTransformer(str(model_dir), device="cpu")

    def run_ours() -> np.ndarray:
        return ours.encode(texts, batch_size=args.batch_size, show_progress=False)

    def run_theirs() -> np.ndarray:
        return theirs.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)

    start = time.perf_counter()
    a = run_ours()
    ours_cold = time.perf_counter() - start
    b = run_theirs()
    cosine = float(np.min(np.sum(a * b / np.linalg.norm(b, axis=1, keepdims=True), axis=1)))
    t_ours = best_of(run_ours, args.repeats)
    t_theirs = best_of(run_theirs, args.repeats)
    n = len(texts)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}")
    print(f"texts: {n} STS-B test sentences (both sides of every pair), batch size {args.batch_size}, float32")
    print(f"gecko_jax             {n / t_ours:8.1f} texts/s  (first call incl. compile: "
          f"{ours_cold:.2f} s)")
    print(f"sentence-transformers {n / t_theirs:8.1f} texts/s")
    print(f"ratio (ours / sentence-transformers): {t_theirs / t_ours:.2f}x")
    print(f"min cosine between the two: {cosine:.6f}")


if __name__ == "__main__":
    main()
