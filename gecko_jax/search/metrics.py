"""trec_eval-compatible ranking metrics (what pytrec_eval, BEIR and MTEB report), so numbers
are comparable with theirs. Used by evaluation and by FRet's teacher check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

# nDCG and MRR are reported at 10, as BEIR and MTEB do.
CUTOFF = 10


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
