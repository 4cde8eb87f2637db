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

from gecko_jax.fret.guards import LabelChoice, choose_labels
from gecko_jax.fret.passages import Passage
from gecko_jax.recipes.ablations.cells import Labels


def choose(
    record: Mapping[str, Any], labels: Labels, rrf_k: float, rng: np.random.Generator
) -> LabelChoice:
    """``record``'s labels under ``labels``, fused with ``rrf_k`` (the mining config's; 0 is the
    paper's), through mining's own rule (:func:`gecko_jax.fret.guards.choose_labels`).

    ``positive="seed"`` is the relabel guard that never lets the positive leave the seed.
    """
    candidates = record["candidate_ids"]
    if record["seed_id"] not in candidates:
        raise ValueError(f"seed {record['seed_id']!r} is not among its query's candidates")
    return choose_labels(
        record["scores"],
        candidates,
        record["seed_id"],
        fusion=labels.reranker,
        rrf_k=rrf_k,
        guard="seed" if labels.positive == "seed" else labels.guard,
        negative="random" if labels.negative == "random" else "nth",
        rng=rng,
        negative_fusion=labels.negative_fusion,
        false_negative_margin=None if labels.negative == "none" else labels.false_negative_margin,
        false_negative_scorers=labels.false_negative_scorers,
    )


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
    out = []
    for record in records:
        candidates = record["candidate_ids"]
        choice = choose(record, labels, rrf_k, rng)
        negative = None if labels.negative == "none" else choice.negative
        out.append(
            {
                "task": record["task"],
                "query": record["query"],
                "seed_id": record["seed_id"],
                "positive": passages[candidates[choice.positive]].to_json(),
                "negative": None if negative is None else passages[candidates[negative]].to_json(),
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
