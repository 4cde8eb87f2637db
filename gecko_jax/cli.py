"""``gecko-jax``: the command-line entry point.

``gecko-jax demo`` embeds Wikipedia lead extracts with all-MiniLM-L6-v2 in JAX and retrieves
each held-out article from its one-line description, printing metrics and example searches.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

DESCRIPTION_TASK = "search result"


def _demo(args: argparse.Namespace) -> int:
    from gecko_jax import Encoder
    from gecko_jax.assets import minilm_path
    from gecko_jax.data.wiki_extracts import load_wiki_extracts
    from gecko_jax.evaluation.retrieval import exact_top_k, single_relevant_metrics

    started = time.perf_counter()
    articles = load_wiki_extracts()
    rng = np.random.default_rng(args.seed)
    corpus = [articles[i] for i in rng.permutation(len(articles))[: args.passages]]
    seen: set[str] = set()
    query_ids = []
    for i, article in enumerate(corpus):
        key = article.description.lower()
        if article.description and key not in seen:
            seen.add(key)
            query_ids.append(i)
    query_ids = query_ids[: args.queries]
    print(f"[1/3] corpus: {len(corpus)} Wikipedia extracts, {len(query_ids)} description queries")

    model_path = Path(args.model) if args.model else minilm_path()
    encoder = Encoder.from_pretrained(model_path)
    print(f"[2/3] encoding with {model_path.name} ({encoder.embedding_dim}-d) in JAX")
    docs = encoder.encode_documents(
        [a.text for a in corpus],
        [a.title for a in corpus],
        batch_size=args.batch_size,
        show_progress=True,
    )
    queries = encoder.encode_queries(
        [corpus[i].description for i in query_ids],
        task=DESCRIPTION_TASK,
        batch_size=args.batch_size,
        show_progress=True,
    )
    ranked, scores = exact_top_k(queries, docs, k=10)
    metrics = single_relevant_metrics(ranked, np.asarray(query_ids))
    print(f"[3/3] description -> article retrieval over {len(corpus)} articles")
    for name, value in metrics.items():
        print(f"  {name:<10} {value:.4f}")
    print("examples:")
    for row in range(min(3, len(query_ids))):
        target = corpus[query_ids[row]]
        best = corpus[ranked[row, 0]]
        mark = "ok" if best.id == target.id else "miss"
        print(f"  [{mark}] {target.description!r} -> {best.title!r} ({scores[row, 0]:.3f})")
    if encoder.tokenizer.truncation.texts_truncated:
        print(f"note: {encoder.tokenizer.truncation.report()}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "model": str(model_path),
        "passages": len(corpus),
        "queries": len(query_ids),
        "seed": args.seed,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'results.json'} ({result['seconds']} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="embed and search Wikipedia extracts on CPU")
    demo.add_argument("--model", help="model folder (default: the offline all-MiniLM-L6-v2)")
    demo.add_argument("--passages", type=int, default=1000, help="corpus size")
    demo.add_argument("--queries", type=int, default=300, help="description queries")
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="demo_out", help="where results.json is written")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
