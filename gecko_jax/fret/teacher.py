"""Teacher evaluation: how well the FRet LLM reranks the initial retriever's top N (Table 6).

FRet distils the LLM's ranking into the student, so the LLM must rank better than the student
already does. This measures it on judged data: retrieve the top N by the initial embedder,
rerank by query likelihood, relevance classification, RRF(QL, RC), RRF(QL, RC, retriever
rank) and RRF(QL, retriever rank), score every ranking with trec_eval's metrics, and compare
each reranker with the retriever query by query (wins, losses and a bootstrap interval of the
mean difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gecko_jax.encoder import Encoder
from gecko_jax.fret.fusion import fuse, ranks_from_scores
from gecko_jax.fret.mine import SCORERS, embed_queries, score_jointly, score_separately
from gecko_jax.fret.passages import Passage
from gecko_jax.llm.base import LLM
from gecko_jax.search.exact import exact_top_k
from gecko_jax.search.metrics import per_query_metrics

# Each ranking's fusion members; one member keeps its own order.
METHODS: dict[str, tuple[str, ...]] = {
    "retriever": ("retriever",),
    "ql": ("query_likelihood",),
    "rc": ("relevance",),
    "rrf": ("query_likelihood", "relevance"),
    "rrf_retriever": ("query_likelihood", "relevance", "retriever"),
    "ql_retriever": ("query_likelihood", "retriever"),
}
METRICS = ("ndcg@10", "mrr@10", "p@1")
BASELINE = "retriever"
BOOTSTRAP_SAMPLES = 2000
# The teacher check of a FRet run reads at most this many records.
TEACHER_CHECK_LIMIT = 20_000


class RerankSet(NamedTuple):
    """Queries (text and the task they are embedded with), passages, graded judgements."""

    queries: dict[str, str]
    tasks: dict[str, str]
    passages: dict[str, Passage]
    qrels: dict[str, dict[str, int]]


def candidates_of(
    encoder: Encoder, data: RerankSet, num_candidates: int
) -> tuple[list[str], list[list[str]]]:
    """Query ids and each query's top-N passage ids by exact search, best first."""
    query_ids, doc_ids = list(data.queries), list(data.passages)
    rows = [{"task": data.tasks[q], "query": data.queries[q]} for q in query_ids]
    query_emb = embed_queries(encoder, rows)
    docs = [data.passages[d] for d in doc_ids]
    doc_emb = encoder.encode_documents([p.text for p in docs], [p.title for p in docs])
    indices, _ = exact_top_k(query_emb, doc_emb, num_candidates)
    return query_ids, [[doc_ids[j] for j in row] for row in indices]


def teacher_scores(
    llm: LLM,
    queries: Sequence[str],
    candidates: Sequence[Sequence[Passage]],
    scoring: str,
    batch_size: int,
) -> list[dict[str, np.ndarray]]:
    """Each query's LLM scores of its candidates, by scorer (the pipeline's own scoring)."""
    pairs = [(q, p) for q, row in zip(queries, candidates, strict=True) for p in row]
    score = score_jointly if scoring == "joint" else score_separately
    flat = score(llm, pairs, batch_size)
    out, start = [], 0
    for row in candidates:
        out.append({name: flat[name][start : start + len(row)] for name in SCORERS})
        start += len(row)
    return out


def rankings(scores: Mapping[str, np.ndarray], n: int, rrf_k: float = 0.0) -> dict[str, np.ndarray]:
    """Each method's 1-based rank of each of the ``n`` candidates (retrieval order)."""
    return {m: ranks_from_scores(fuse(scores, members, n, rrf_k)) for m, members in METHODS.items()}


def per_query(
    query_ids: Sequence[str],
    candidate_ids: Sequence[Sequence[str]],
    ranks: Sequence[Mapping[str, np.ndarray]],
    qrels: Mapping[str, Mapping[str, int]],
) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {qid: {ndcg@10, mrr@10, p@1}}}`` of every judged query.

    The run holds the N candidates only, so relevant passages outside them count as misses (as
    for any reranker of a top N); P@1 is whether the first passage is relevant.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in METHODS:
        run = {
            qid: {doc: -float(rank) for doc, rank in zip(ids, r[method], strict=True)}
            for qid, ids, r in zip(query_ids, candidate_ids, ranks, strict=True)
        }
        first = {
            qid: ids[int(np.argmin(r[method]))]
            for qid, ids, r in zip(query_ids, candidate_ids, ranks, strict=True)
        }
        metrics = per_query_metrics(run, qrels, k_values=(1,))
        out[method] = {
            qid: {
                "ndcg@10": values["ndcg@10"],
                "mrr@10": values["mrr@10"],
                "p@1": float(qid in first and qrels[qid].get(first[qid], 0) >= 1),
            }
            for qid, values in metrics.items()
        }
    return out


def paired(
    method: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    metric: str,
    seed: int = 0,
) -> dict[str, Any]:
    """Wins, losses and ties of ``method`` over ``baseline`` per query, the mean difference and
    its 95% bootstrap interval: an interval that holds 0 is no measured difference."""
    qids = sorted(baseline)
    diff = np.array([method[q][metric] - baseline[q][metric] for q in qids], np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (BOOTSTRAP_SAMPLES, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "wins": int((diff > 0).sum()),
        "losses": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "mean_diff": float(diff.mean()),
        "ci95": [float(low), float(high)],
    }


def summarize(per_method: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Mean metrics per method and each reranker's paired comparison with the retriever."""
    out: dict[str, Any] = {
        m: {k: float(np.mean([v[k] for v in per_method[m].values()])) for k in METRICS}
        for m in per_method
    }
    out["paired"] = {
        m: {k: paired(per_method[m], per_method[BASELINE], k) for k in ("ndcg@10", "p@1")}
        for m in per_method
        if m != BASELINE
    }
    return out


def verdict(summary: Mapping[str, Any], method: str = "rrf") -> str:
    """One plain sentence: does ``method`` rank better than the retriever at P@1?"""
    comparison = summary["paired"][method]["p@1"]
    low, high = comparison["ci95"]
    teacher, student = summary[method]["p@1"], summary[BASELINE]["p@1"]
    numbers = f"P@1 {teacher:.3f} vs {student:.3f}, 95% interval of the difference"
    numbers += f" [{low:+.3f}, {high:+.3f}]"
    if low > 0:
        return f"the teacher ({method}) ranks better than the retriever ({numbers})"
    if high < 0:
        return (
            f"the teacher ({method}) ranks WORSE than the retriever ({numbers}): its relabels "
            "would teach the student wrong positives"
        )
    return f"the teacher ({method}) is not measurably better than the retriever ({numbers})"


def evaluate_teacher(
    llm: LLM,
    encoder: Encoder,
    data: RerankSet,
    num_candidates: int,
    scoring: str = "joint",
    rrf_k: float = 0.0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Metrics of the retriever and of each LLM reranking of its top ``num_candidates``."""
    if num_candidates < 2:
        raise ValueError(f"num_candidates must be >= 2 to rerank, got {num_candidates}")
    judged = [q for q in data.queries if any(g >= 1 for g in data.qrels.get(q, {}).values())]
    if not judged:
        raise ValueError("no query has a relevant passage in the judgements")
    data = data._replace(
        queries={q: data.queries[q] for q in judged}, qrels={q: data.qrels[q] for q in judged}
    )
    query_ids, candidate_ids = candidates_of(encoder, data, num_candidates)
    candidates = [[data.passages[d] for d in ids] for ids in candidate_ids]
    scores = teacher_scores(
        llm, [data.queries[q] for q in query_ids], candidates, scoring, batch_size
    )
    ranks = [rankings(s, len(ids), rrf_k) for s, ids in zip(scores, candidate_ids, strict=True)]
    per_method = per_query(query_ids, candidate_ids, ranks, data.qrels)
    found = [
        any(data.qrels[q].get(d, 0) >= 1 for d in ids)
        for q, ids in zip(query_ids, candidate_ids, strict=True)
    ]
    summary = summarize(per_method)
    return {
        **summary,
        "verdict": verdict(summary),
        "queries": len(query_ids),
        "num_candidates": num_candidates,
        f"recall@{num_candidates}": float(np.mean(found)),
        "scoring": scoring,
        "rrf_k": rrf_k,
        "failed_scores": int(sum(np.isnan(v).sum() for s in scores for v in s.values())),
        "per_query": {
            q: {
                "candidates": ids,
                "relevant": [d for d in ids if data.qrels[q].get(d, 0) >= 1],
                "scores": {k: v.tolist() for k, v in s.items()},
                **{m: per_method[m][q] for m in METHODS},
            }
            for q, ids, s in zip(query_ids, candidate_ids, scores, strict=True)
        },
    }


def heldout_set(rows: Sequence[Mapping[str, Any]], passages: Sequence[Passage]) -> RerankSet:
    """Generated queries judged by their seed passage alone, searched among all ``passages``:
    the FRet held-out slice (its queries are never relabelled, so they test the teacher)."""
    return RerankSet(
        queries={f"q{i}": row["query"] for i, row in enumerate(rows)},
        tasks={f"q{i}": row["task"] for i, row in enumerate(rows)},
        passages={p.id: p for p in passages},
        qrels={f"q{i}": {row["passage_id"]: 1} for i, row in enumerate(rows)},
    )


def seed_agreement(
    records: Sequence[Mapping[str, Any]], fusion: Sequence[str], rrf_k: float = 0.0
) -> dict[str, Any]:
    """Each ranking's P@1 against the seed on mined FRet records, from their stored scores.

    The seed is the passage the query was written from: a teacher that picks it less often than
    the retriever does is relabelling against the evidence. No LLM call; ``fusion`` (the mining
    fusion's members) names the ranking the verdict is about.
    """
    if not records:
        return {"queries": 0}
    # A fixed order, so the bootstrap interval does not depend on the order records arrive in.
    records = sorted(records, key=lambda r: (r["seed_id"], r["query"], r["task"]))
    qids = [f"q{i}" for i in range(len(records))]
    candidate_ids = [list(r["candidate_ids"]) for r in records]
    ranks = [
        rankings({k: np.asarray(r["scores"][k], np.float64) for k in SCORERS}, len(ids), rrf_k)
        for r, ids in zip(records, candidate_ids, strict=True)
    ]
    qrels = {q: {r["seed_id"]: 1} for q, r in zip(qids, records, strict=True)}
    summary = summarize(per_query(qids, candidate_ids, ranks, qrels))
    method = next((m for m, members in METHODS.items() if members == tuple(fusion)), "rrf")
    return {
        "queries": len(records),
        "p@1": {m: summary[m]["p@1"] for m in METHODS},
        "paired_p@1": {m: summary["paired"][m]["p@1"] for m in summary["paired"]},
        "verdict": verdict(summary, method),
    }
