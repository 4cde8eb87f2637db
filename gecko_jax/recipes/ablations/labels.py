"""Relabel stored FRet records offline: another positive, negative or reranker, no LLM call.

Each ``fret.jsonl`` record keeps every candidate's query-likelihood and relevance scores, so any
label choice of Tables 3 and 6 is a pure function of the record, through the same fusion code
the pipeline used (:mod:`gecko_jax.fret.fusion`). That is what makes every cell share one FRet
budget: the same queries, candidates and LLM scores, labelled differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gecko_jax.fret.fusion import member_ranks, reciprocal_rank_fusion, select
from gecko_jax.fret.guards import guarded_fusion, safe_negative
from gecko_jax.fret.passages import Passage
from gecko_jax.recipes.ablations.cells import Labels


def fused_scores(record: Mapping[str, Any], labels: Labels, rrf_k: float) -> np.ndarray:
    """RRF with ``rrf_k`` (the mining config's; 0 is the paper's) over the chosen members'
    ranks; one member keeps its order.

    With ``positive="seed"``, or where ``labels.guard`` blocks a move, the seed passage is put
    first, so :func:`select` returns it as the positive and draws the negative from the other
    candidates in their fused order (the mining pipeline's rule, :mod:`gecko_jax.fret.guards`).
    """
    candidates = record["candidate_ids"]
    if record["seed_id"] not in candidates:
        raise ValueError(f"seed {record['seed_id']!r} is not among its query's candidates")
    ranks = member_ranks(record["scores"], labels.reranker, len(candidates))
    fused = reciprocal_rank_fusion(list(ranks.values()), rrf_k)
    guard = "seed" if labels.positive == "seed" else labels.guard
    return guarded_fusion(fused, ranks, candidates.index(record["seed_id"]), guard)[0]


def relabel(
    records: Sequence[Mapping[str, Any]],
    passages: Mapping[str, Passage],
    labels: Labels,
    seed: int,
    rrf_k: float,
) -> list[dict[str, Any]]:
    """Training records (task, query, seed_id, positive, negative or None) under ``labels``,
    fused as the records were mined (``rrf_k``: ``MineConfig.rrf_k``).

    ``seed`` seeds the random negatives; the other choices are deterministic.
    """
    rng = np.random.default_rng(seed)
    negative = "random" if labels.negative == "random" else "nth"
    out = []
    for record in records:
        candidates = record["candidate_ids"]
        fused = fused_scores(record, labels, rrf_k)
        pos, neg = select(candidates, fused, negative, rng=rng)
        if labels.negative != "none":
            neg = safe_negative(record["scores"], fused, pos, neg, labels.false_negative_margin)
        hard_negative = (
            None if labels.negative == "none" or neg is None else passages[candidates[neg]]
        )
        out.append(
            {
                "task": record["task"],
                "query": record["query"],
                "seed_id": record["seed_id"],
                "positive": passages[candidates[pos]].to_json(),
                "negative": hard_negative and hard_negative.to_json(),
            }
        )
    return out


def changed_share(
    records: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]]
) -> float:
    """The share of examples whose positive or hard negative differs between two labellings.

    Near zero means two cells train on nearly the same data, so no difference between them can
    be expected, whatever the paper found at scale.
    """

    def ids(record: Mapping[str, Any]) -> tuple[str, str | None]:
        return record["positive"]["id"], (record["negative"] or {}).get("id")

    pairs = list(zip(records, other, strict=True))
    return sum(ids(a) != ids(b) for a, b in pairs) / len(pairs) if pairs else 0.0
