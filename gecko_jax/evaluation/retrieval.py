"""Exact top-k search and trec_eval-compatible retrieval metrics.

Exact search is the reference every approximate index is measured against, so it lives here,
below the index code, and works on unit-norm embeddings (inner product == cosine). The metrics
follow trec_eval (what pytrec_eval, BEIR and MTEB report), so numbers are comparable with theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


class RetrievalSet(NamedTuple):
    """Queries by id, documents by id as ``(title, text)``, and graded judgements."""

    queries: dict[str, str]
    corpus: dict[str, tuple[str | None, str]]
    qrels: dict[str, dict[str, int]]


# nDCG and MRR are reported at 10, as BEIR and MTEB do.
CUTOFF = 10


def exact_top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` highest inner products per query, best first."""
    if queries.ndim != 2 or corpus.ndim != 2 or queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, corpus {corpus.shape}")
    k = min(k, corpus.shape[0])
    indices = np.empty((queries.shape[0], k), np.int64)
    scores = np.empty((queries.shape[0], k), np.float32)
    for start in range(0, queries.shape[0], chunk_size):
        sims = queries[start : start + chunk_size] @ corpus.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices[start : start + chunk_size] = np.take_along_axis(top, order, axis=1)
        scores[start : start + chunk_size] = np.take_along_axis(top_scores, order, axis=1)
    return indices, scores


def run_from_top_k(
    query_ids: Sequence[str], doc_ids: Sequence[str], indices: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    """The ``{qid: {docid: score}}`` run of an ``exact_top_k`` result."""
    return {
        qid: {doc_ids[j]: float(s) for j, s in zip(row, row_scores, strict=True)}
        for qid, row, row_scores in zip(query_ids, indices, scores, strict=True)
    }


def per_query_metrics(
    run: Run, qrels: Qrels, k_values: Sequence[int] = (1, 10, 100)
) -> dict[str, dict[str, float]]:
    """nDCG@10, MRR@10 and recall@k of every query with at least one relevant document.

    As trec_eval: a document is relevant when its grade is >= 1; the gain is the grade with a
    log2(rank + 1) discount; the ideal ranking is built from the qrels, so relevant documents
    the run never retrieved still count; ties in score rank the larger doc id first. A query
    with no relevant document has nothing to find and is left out (trec_eval scores it 0), and
    one missing from the run scores 0 (trec_eval leaves it out).
    """
    discounts = 1.0 / np.log2(np.arange(2, CUTOFF + 2))
    results = {}
    for qid, judged in qrels.items():
        relevant = {doc: grade for doc, grade in judged.items() if grade >= 1}
        if not relevant:
            continue
        ranked = sorted(run.get(qid, {}).items(), key=lambda item: (item[1], item[0]))[::-1]
        gains = np.array([relevant.get(doc, 0) for doc, _ in ranked], np.float64)
        ideal = np.sort(np.fromiter(relevant.values(), np.float64))[::-1][:CUTOFF]
        top = gains[:CUTOFF]
        hits = np.flatnonzero(top > 0)
        metrics = {
            f"ndcg@{CUTOFF}": float(
                top @ discounts[: len(top)] / (ideal @ discounts[: len(ideal)])
            ),
            f"mrr@{CUTOFF}": float(1.0 / (hits[0] + 1)) if len(hits) else 0.0,
        }
        for k in k_values:
            metrics[f"recall@{k}"] = float(np.count_nonzero(gains[:k]) / len(relevant))
        results[qid] = metrics
    return results


def retrieval_metrics(
    run: Run, qrels: Qrels, k_values: Sequence[int] = (1, 10, 100)
) -> dict[str, float]:
    """``per_query_metrics`` averaged over the queries."""
    per_query = list(per_query_metrics(run, qrels, k_values).values())
    if not per_query:
        raise ValueError("no query in qrels has a relevant document")
    return {name: float(np.mean([m[name] for m in per_query])) for name in per_query[0]}


def single_relevant_metrics(
    ranked: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...] = (1, 10)
) -> dict[str, float]:
    """Recall@k and MRR@10 when each query has exactly one relevant document (by index)."""
    run = {str(q): {str(d): -float(r) for r, d in enumerate(row)} for q, row in enumerate(ranked)}
    qrels = {str(q): {str(int(d)): 1} for q, d in enumerate(relevant)}
    metrics = retrieval_metrics(run, qrels, ks)
    return {name: metrics[name] for name in [*(f"recall@{k}" for k in ks), f"mrr@{CUTOFF}"]}


def evaluate_retrieval(
    encoder: Encoder,
    queries: Mapping[str, str],
    corpus: Mapping[str, tuple[str | None, str]],
    qrels: Qrels,
    task: str,
    k_values: Sequence[int] = (1, 10, 100),
    symmetric: bool = False,
    batch_size: int = 64,
) -> dict[str, float]:
    """Embed, search the whole corpus exactly, and score the ranking against ``qrels``.

    ``corpus`` maps doc ids to ``(title, text)``. Queries get ``task: {task} | query: ...``;
    documents get ``title: ... | text: ...``, or for a symmetric task (Table 9 ✓) the query
    format too, with the title (if any) joined before the text.
    """
    if not queries or not corpus:
        raise ValueError(f"need queries and documents, got {len(queries)} and {len(corpus)}")
    query_ids, doc_ids = list(queries), list(corpus)
    query_emb = encoder.encode_queries(
        [queries[q] for q in query_ids], task=task, batch_size=batch_size
    )
    documents = [corpus[d] for d in doc_ids]
    if symmetric:
        joined = [f"{title} {text}" if title else text for title, text in documents]
        doc_emb = encoder.encode_queries(joined, task=task, batch_size=batch_size)
    else:
        doc_emb = encoder.encode_documents(
            [text for _, text in documents],
            [title for title, _ in documents],
            batch_size=batch_size,
        )
    indices, scores = exact_top_k(query_emb, doc_emb, max(*k_values, CUTOFF))
    return retrieval_metrics(run_from_top_k(query_ids, doc_ids, indices, scores), qrels, k_values)
