"""FRet query quality under prompt, sampling and filter settings, on the same seed passages.

A small LLM tends to copy its passage; this prints the generate-stage diagnostics (the ones the
FRet manifest records) for each setting side by side, so a prompt or sampling change is judged
by numbers:

* ``llm picks task``: the LLM chooses a task and answers ``{"task": ..., "query": ...}``.
* ``given task``: task types round-robin, the answer is ``{"query": ...}`` alone (the default).
* ``given task, t=0.7``: the same, sampled.
* ``given task, overlap <= X``: the default's answers (from the call cache, no new LLM calls)
  with queries dropped whose word overlap with their passage exceeds X.

    python benchmarks/query_quality.py [--passages 64] [--max-tokens 64] [--max-overlap 0.75]
                                       [--llm jax:PATH] [--cache DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-overlap", type=float, default=0.75)
    parser.add_argument("--llm", default=None, help="a load_llm spec (default: offline SmolLM2)")
    parser.add_argument("--cache", default=None, help="folder of the LLM call cache")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from gecko_jax.core.assets import smollm2_gguf_path
    from gecko_jax.fret.generate import GenerateConfig, generate_queries
    from gecko_jax.llm import load_llm
    from gecko_jax.recipes.demo.corpus import wiki_seed_passages

    cache_dir = Path(args.cache or tempfile.mkdtemp(prefix="query_quality_"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    llm = load_llm(args.llm or f"jax:{smollm2_gguf_path()}", cache=cache_dir / "llm_cache.jsonl")
    passages = wiki_seed_passages(args.passages, exclude_texts=(), seed=0)
    base = GenerateConfig(max_tokens=args.max_tokens)
    settings = {
        "llm picks task": dataclasses.replace(base, balance_tasks=False),
        "given task": base,
        "given task, t=0.7": dataclasses.replace(base, temperature=0.7),
        f"given task, overlap <= {args.max_overlap}": dataclasses.replace(
            base, max_overlap=args.max_overlap
        ),
    }
    print(f"{len(passages)} Wikipedia seed passages, {llm!r}, max {args.max_tokens} new tokens")
    header = (
        "| setting | kept | malformed | cut at limit | verbatim copies | mean word overlap "
        "| dropped (overlap) | task 'other' | s/passage |"
    )
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    for name, config in settings.items():
        start = time.perf_counter()
        _, diag = generate_queries(llm, passages, config)
        seconds = (time.perf_counter() - start) / len(passages)
        overlap = diag["mean_word_overlap"]
        print(
            f"| {name} | {diag['rows']} | {diag['malformed']} | {diag['cut_at_max_tokens']} | "
            f"{diag['verbatim_copy']} | {overlap:.2f} | {diag['dropped_overlap']} | "
            f"{diag['task_types'].get('other', 0)} | {seconds:.2f} |"
        )
    print("examples (given task):")
    texts = {p.id: p.text for p in passages}
    for row in generate_queries(llm, passages, base)[0][:6]:
        passage = texts[row["passage_id"]]
        print(f"  [{row['requested_type']}] {row['query']!r}  <- {passage[:70]!r}...")


if __name__ == "__main__":
    main()
