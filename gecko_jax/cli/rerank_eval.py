"""``gecko-rerank-eval --data wiki|DIR --out OUT``: is the LLM a better ranker than the student?

``--data`` is ``wiki`` (the demo's Wikipedia description -> article evaluation set), a BEIR
folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``) or a demo output folder (its
held-out FRet queries, each judged by its seed passage). Writes ``OUT/results.json`` and prints
the table; LLM calls go through the on-disk cache (``--llm_cache``, shared between runs with
other ``--num_candidates``, so a second run pays for no call twice).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gecko_jax.cli.fret_flags import positive_int
from gecko_jax.cli.llm_flags import add_llm_arg, check_llm_args
from gecko_jax.core.assets import smollm2_llm_spec
from gecko_jax.fret.fusion import LLM_SCORERS
from gecko_jax.fret.mine import SCORING
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.records import GENERATED, LLM_CACHE, read_jsonl
from gecko_jax.fret.teacher import METHODS, METRICS, RerankSet, evaluate_teacher, heldout_set

WIKI = "wiki"
# The demo's evaluation set: 200 description queries over 10x as many articles, seed 0.
WIKI_QUERIES = 200


def _passage(doc_id: str, title: str, text: str, max_chars: int) -> Passage:
    return Passage(doc_id, title, text.strip()[:max_chars])


def wiki_set(max_chars: int) -> RerankSet:
    from gecko_jax.evaluation.suite import TASKS, load_task

    data = load_task("wiki_retrieval", limit=WIKI_QUERIES)
    task = TASKS["wiki_retrieval"].task
    return RerankSet(
        queries=data["queries"],
        tasks=dict.fromkeys(data["queries"], task),
        passages={d: _passage(d, t or "", x, max_chars) for d, (t, x) in data["corpus"].items()},
        qrels=data["qrels"],
    )


def beir_set(folder: Path, task: str, max_chars: int) -> RerankSet:
    from gecko_jax.data.beir import read_beir

    data = read_beir(folder)
    return RerankSet(
        queries=data.queries,
        tasks=dict.fromkeys(data.queries, task),
        passages={d: _passage(d, t, x, max_chars) for d, (t, x) in data.corpus.items()},
        qrels=data.qrels,
    )


def demo_heldout_set(folder: Path) -> RerankSet:
    """A demo output's held-out slice: the passages as the demo cut them, its held-out ids."""
    passages = [Passage(**row) for row in read_jsonl(folder / "passages.jsonl")]
    heldout = set(json.loads((folder / "splits.json").read_text())["heldout"])
    rows = [r for r in read_jsonl(folder / "fret" / GENERATED) if r["passage_id"] in heldout]
    return heldout_set(rows, passages)


def load_set(data: str, task: str, max_chars: int) -> RerankSet:
    if data == WIKI:
        return wiki_set(max_chars)
    folder = Path(data)
    if (folder / "corpus.jsonl").is_file():
        return beir_set(folder, task, max_chars)
    if (folder / "fret" / GENERATED).is_file() and (folder / "splits.json").is_file():
        return demo_heldout_set(folder)
    raise ValueError(
        f"--data {data!r}: expected 'wiki', a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/test.tsv) or a demo output folder (passages.jsonl, splits.json, fret/)"
    )


def sample_queries(data: RerankSet, max_queries: int | None, seed: int) -> RerankSet:
    """A seeded subsample of the queries (all of them for ``None``), in their original order."""
    ids = list(data.queries)
    if max_queries is None or max_queries >= len(ids):
        return data
    keep = sorted(np.random.default_rng(seed).choice(len(ids), max_queries, replace=False))
    return data._replace(queries={ids[i]: data.queries[ids[i]] for i in keep})


def format_table(results: dict[str, Any]) -> str:
    """The metrics of each ranking, with each reranker's wins/losses against the retriever."""
    lines = [
        f"{'ranking':<14}" + "".join(f"{m:>9}" for m in METRICS) + "   P@1 vs retriever (W/L)",
    ]
    for method in METHODS:
        row = f"{method:<14}" + "".join(f"{results[method][m]:>9.4f}" for m in METRICS)
        if method in results["paired"]:
            p = results["paired"][method]["p@1"]
            row += f"   {p['mean_diff']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"
            row += f" {p['wins']}/{p['losses']}"
        lines.append(row)
    n = results["num_candidates"]
    lines.append(
        f"{results['queries']} queries, top {n} by the retriever (recall@{n} "
        f"{results[f'recall@{n}']:.3f}), {results['scoring']} scoring"
    )
    lines.append("verdict: " + results["verdict"])
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-rerank-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="wiki, a BEIR folder or a demo output")
    parser.add_argument("--out", required=True, help="output folder (results.json)")
    parser.add_argument("--model", help="initial embedder folder (default: MiniLM)")
    parser.add_argument("--llm", help="LLM spec (default: jax:<SmolLM2 GGUF>)")
    add_llm_arg(parser)
    parser.add_argument("--num_candidates", type=positive_int, default=10)
    parser.add_argument("--max_queries", type=positive_int)
    parser.add_argument("--scoring", choices=SCORING, default="joint")
    parser.add_argument("--rrf_k", type=float, default=0.0)
    parser.add_argument("--max_chars", type=positive_int, default=2000, help="passage cut")
    parser.add_argument(
        "--task",
        default="Given a query, retrieve relevant passages.",
        help="task description of a BEIR set's queries",
    )
    parser.add_argument("--batch_size", type=positive_int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="seeds --max_queries' sample")
    parser.add_argument("--llm_cache", help=f"LLM call cache (default: OUT/{LLM_CACHE})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    llm_spec = args.llm or smollm2_llm_spec()
    llm_kwargs = dict(args.llm_arg)
    check_llm_args(parser, llm_spec, llm_kwargs)
    if args.num_candidates < 2:
        parser.error("--num_candidates must be >= 2 to rerank")
    try:
        data = sample_queries(
            load_set(args.data, args.task, args.max_chars), args.max_queries, args.seed
        )
    except (OSError, ValueError) as error:
        parser.error(str(error))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from gecko_jax.core.assets import minilm_path
    from gecko_jax.encoder import Encoder
    from gecko_jax.llm import load_llm

    encoder = Encoder.from_pretrained(args.model or minilm_path())
    llm = load_llm(llm_spec, cache=args.llm_cache or out / LLM_CACHE, **llm_kwargs)
    results = evaluate_teacher(
        llm, encoder, data, args.num_candidates, args.scoring, args.rrf_k, args.batch_size
    )
    per_query = results.pop("per_query")
    results = {
        "data": args.data,
        "model": str(args.model or "all-MiniLM-L6-v2"),
        "llm": llm.cache_identity(),
        "llm_scorers": list(LLM_SCORERS),
        "max_chars": args.max_chars,
        **results,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out / "per_query.jsonl", "w", encoding="utf-8") as handle:
        for qid, row in per_query.items():
            handle.write(json.dumps({"query_id": qid, **row}) + "\n")
    print(format_table(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
