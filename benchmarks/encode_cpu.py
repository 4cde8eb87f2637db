"""Encode throughput on CPU: gecko_jax ``Encoder.encode`` vs sentence-transformers ``encode``.

Same model (all-MiniLM-L6-v2 from the offline package), same texts, same batch size, float32,
both warmed up on the full set once before timing. ``--texts short``: the 2,758 STS-B test
sentences (both sides of every pair); ``--texts long``: ``--passages`` passages of at least 256
tokens (Wikipedia extracts joined in order), which both sides cut at MiniLM's max length of
256, as mining embeds whole corpora. Prints texts/s for both and the ratio (ours / theirs;
> 1 means JAX is faster).

    python benchmarks/encode_cpu.py [--texts short|long] [--sts-dir ../shared/data/stsbenchmark]
                                    [--batch-size 64] [--passages 400]
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

import numpy as np

DEFAULT_STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def sts_sentences(sts_dir: Path) -> list[str]:
    sentences: list[str] = []
    with open(sts_dir / "sts-test.csv", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            sentences.extend(row[5:7])
    return sentences


def long_passages(count: int, min_words: int = 256) -> list[str]:
    """``count`` passages of at least ``min_words`` words (more than 256 tokens), each joined
    from consecutive Wikipedia extracts."""
    import json

    from gecko_jax.core.assets import wiki_extracts_path

    extracts = json.loads(wiki_extracts_path().read_text(encoding="utf-8")).values()
    passages, words = [], []
    for entry in extracts:
        words.extend(entry["extract"].split())
        if len(words) >= min_words:
            passages.append(" ".join(words))
            words = []
        if len(passages) == count:
            return passages
    raise ValueError(f"the extracts make fewer than {count} passages of {min_words} words")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts-dir", type=Path, default=DEFAULT_STS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--texts", choices=("short", "long"), default="short")
    parser.add_argument("--passages", type=int, default=400)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from gecko_jax import Encoder
    from gecko_jax.core.assets import minilm_path

    texts = sts_sentences(args.sts_dir) if args.texts == "short" else long_passages(args.passages)
    model_dir = minilm_path()
    ours = Encoder.from_pretrained(model_dir)
    theirs = SentenceTransformer(str(model_dir), device="cpu")
    batch = args.batch_size

    def run_ours(batch_size: int = batch) -> np.ndarray:
        return ours.encode(texts, batch_size=batch_size, show_progress=False)

    def run_theirs(batch_size: int = batch) -> np.ndarray:
        return theirs.encode(texts, batch_size=batch_size, convert_to_numpy=True)

    cold = timed(run_ours)
    a, b = run_ours(), run_theirs()
    cosine = float(np.min(np.sum(a * b / np.linalg.norm(b, axis=1, keepdims=True), axis=1)))
    # Interleaved repeats, best of each: both sides see the same machine noise.
    t_ours = t_theirs = float("inf")
    for _ in range(args.repeats):
        t_ours = min(t_ours, timed(run_ours))
        t_theirs = min(t_theirs, timed(run_theirs))
    st_best = {size: timed(lambda s=size: run_theirs(s)) for size in (16, 32, 128, 256)}
    st_best[batch] = t_theirs
    best_size = min(st_best, key=st_best.get)

    n = len(texts)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, jax {jax_version()}, torch {torch.__version__}"
    )
    what = "STS-B test sentences" if args.texts == "short" else "passages cut at 256 tokens"
    print(f"texts: {n} {what}, float32")
    print(f"batch size {batch}:")
    print(
        f"  gecko_jax             {n / t_ours:8.1f} texts/s  (first call with compile {cold:.1f} s)"
    )
    print(f"  sentence-transformers {n / t_theirs:8.1f} texts/s")
    print(f"  ratio (ours / sentence-transformers): {t_theirs / t_ours:.2f}x")
    print(
        f"sentence-transformers at its best batch size ({best_size}): "
        f"{n / st_best[best_size]:.1f} texts/s, ratio {st_best[best_size] / t_ours:.2f}x"
    )
    print(f"min cosine between the two: {cosine:.6f}")


def jax_version() -> str:
    import jax

    return jax.__version__


if __name__ == "__main__":
    main()
