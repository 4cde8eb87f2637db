"""FRet step 2: retrieve top-N candidates per query, rank them with the LLM, pick labels.

Each candidate gets QL = log p(query | passage) and RC = log p(" Yes" | query, passage); their
ranks are fused with RRF and the top fused candidate becomes the positive, which need not be the
seed passage (paper: it differs in about 15% of FRet).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gecko_jax.encoder import Encoder
from gecko_jax.fret.fusion import ranks_from_scores, reciprocal_rank_fusion, select
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.prompts import RC_LABEL, ql_context, rc_context
from gecko_jax.llm.base import LLM
from gecko_jax.retrieval import IndexConfig, VectorIndex, top_n_with_seed

HISTOGRAM_BINS = 10


@dataclasses.dataclass(frozen=True)
class MineConfig:
    num_candidates: int = 20
    rrf_k: float = 0.0
    negative: str = "nth"
    k_th: int = 20
    seed: int = 0
    score_batch_size: int = 32
    recall_sample: int = 1000


def embed_queries(encoder: Encoder, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """``task: {task} | query: {query}`` embeddings; grouped by task, as the encoder takes one."""
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_task[row["task"]].append(i)
    out = np.zeros((len(rows), encoder.embedding_dim), np.float32)
    for task, indices in by_task.items():
        out[indices] = encoder.encode_queries([rows[i]["query"] for i in indices], task=task)
    return out


def score_pairs(
    llm: LLM, contexts: list[str], continuations: list[str], batch_size: int, desc: str
) -> np.ndarray:
    """``llm.score`` totals in batches, with a progress bar (NaN where the backend failed)."""
    totals = []
    for start in tqdm(range(0, len(contexts), batch_size), desc=desc):
        end = start + batch_size
        totals.extend(s.total for s in llm.score(contexts[start:end], continuations[start:end]))
    return np.asarray(totals, dtype=np.float64)


def _histogram(values: np.ndarray) -> dict[str, list[float]] | None:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def mine(
    llm: LLM,
    encoder: Encoder,
    passages: Sequence[Passage],
    rows: Sequence[dict[str, Any]],
    config: MineConfig = MineConfig(),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """FRet records (task, query, positive, negative, seed_id, candidates, ranks, scores)."""
    if not rows:
        return [], {"rows": 0}
    position = {p.id: i for i, p in enumerate(passages)}
    unknown = {r["passage_id"] for r in rows} - position.keys()
    if unknown:
        raise ValueError(
            f"queries generated from passages not in the corpus: {sorted(unknown)[:5]}"
        )
    documents = encoder.encode_documents([p.text for p in passages], [p.title for p in passages])
    queries = embed_queries(encoder, rows)
    index = VectorIndex.build(documents, IndexConfig(seed=config.seed))
    seeds = np.array([position[r["passage_id"]] for r in rows], dtype=np.int64)
    candidates = top_n_with_seed(index, queries, seeds, config.num_candidates)
    recall = index.recall_against_exact(
        queries, candidates.shape[1], config.recall_sample, config.seed
    )

    pairs = [(r, passages[c]) for r, row in zip(rows, candidates, strict=True) for c in row]
    ql = score_pairs(
        llm,
        [ql_context(p.text) for _, p in pairs],
        [" " + r["query"] for r, _ in pairs],
        config.score_batch_size,
        "FRet query likelihood",
    ).reshape(candidates.shape)
    rc = score_pairs(
        llm,
        [rc_context(r["query"], p.text) for r, p in pairs],
        [RC_LABEL] * len(pairs),
        config.score_batch_size,
        "FRet relevance",
    ).reshape(candidates.shape)

    rng = np.random.default_rng(config.seed)
    records = []
    for row, ids, ql_row, rc_row in zip(rows, candidates, ql, rc, strict=True):
        ranks = {
            "query_likelihood": ranks_from_scores(ql_row),
            "relevance": ranks_from_scores(rc_row),
        }
        fused = reciprocal_rank_fusion(list(ranks.values()), config.rrf_k)
        candidate_ids = [passages[i].id for i in ids]
        pos, neg = select(candidate_ids, fused, config.negative, config.k_th, rng)
        fused_ranks = ranks_from_scores(fused)
        records.append(
            {
                "task": row["task"],
                "query": row["query"],
                "positive": passages[ids[pos]].to_json(),
                "negative": passages[ids[neg]].to_json(),
                "seed_id": row["passage_id"],
                "requested_type": row["requested_type"],
                "positive_rank": int(fused_ranks[pos]),
                "negative_rank": int(fused_ranks[neg]),
                "candidate_ids": candidate_ids,
                "ranks": {
                    **{k: v.tolist() for k, v in ranks.items()},
                    "fused": fused_ranks.tolist(),
                },
                "scores": {
                    "query_likelihood": ql_row.tolist(),
                    "relevance": rc_row.tolist(),
                    "fused": fused.tolist(),
                },
            }
        )
    changed = sum(r["positive"]["id"] != r["seed_id"] for r in records)
    stats = {
        "rows": len(records),
        "num_candidates": int(candidates.shape[1]),
        "index_backend": index.backend,
        "recall_vs_exact": recall,
        "positive_not_seed": changed / len(records),
        "failed_scores": int(np.isnan(ql).sum() + np.isnan(rc).sum()),
        "histograms": {
            "query_likelihood": _histogram(ql.ravel()),
            "relevance": _histogram(rc.ravel()),
        },
    }
    return records, stats
